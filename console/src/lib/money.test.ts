import { describe, expect, it } from 'vitest'
import { fenToYuan, formatYuan, yuanToFen } from './money'

describe('fenToYuan', () => {
  it('shows two decimals', () => {
    expect(fenToYuan(0)).toBe('0.00')
    expect(fenToYuan(5)).toBe('0.05')
    expect(fenToYuan(1990)).toBe('19.90')
    expect(fenToYuan(-1250)).toBe('-12.50')
  })
  it('refuses fractions of a fen', () => {
    expect(() => fenToYuan(1.5)).toThrow(RangeError)
  })
})

describe('formatYuan', () => {
  it('adds the sign and thousands separators', () => {
    expect(formatYuan(123456789)).toBe('¥1,234,567.89')
    expect(formatYuan(-500, 'en')).toBe('-¥5.00')
  })
})

describe('yuanToFen', () => {
  it('parses the decimal text exactly', () => {
    expect(yuanToFen('19.9')).toBe(1990)
    expect(yuanToFen('0.1')).toBe(10)
    expect(yuanToFen('0.29')).toBe(29) // 0.29 * 100 is 28.999999999999996 in floats
    expect(yuanToFen(' ¥1,200 ')).toBe(120000)
    expect(yuanToFen('3.')).toBe(300)
    expect(yuanToFen('-2.5')).toBe(-250)
  })
  it('refuses what is not an amount', () => {
    for (const bad of ['', 'abc', '1.234', '1e3', '1.2.3', '.5', '¥']) expect(yuanToFen(bad)).toBeNull()
  })
  it('round-trips', () => {
    for (const fen of [0, 1, 99, 100, 1990, 123456]) expect(yuanToFen(fenToYuan(fen))).toBe(fen)
  })
})
