import { describe, expect, it } from 'vitest'
import { erasureConfirmed, pointsProblem, searchQuery, voidable } from './customers'

const blank = { by: 'phone_suffix' as const, text: '', tier: '', city: '', lifecycle_stage: '' }

describe('customer search', () => {
  it('sends only the field searched by and the filters set', () => {
    expect(searchQuery(blank)).toEqual({})
    expect(searchQuery({ ...blank, text: ' 5678 ', tier: 'gold', city: ' 上海 ' })).toEqual({ phone_suffix: '5678', tier: 'gold', city: '上海' })
    expect(searchQuery({ ...blank, by: 'nickname', text: 'ali', lifecycle_stage: 'silent' })).toEqual({ nickname: 'ali', lifecycle_stage: 'silent' })
  })
  it('takes the last four digits of a whole phone number', () => {
    expect(searchQuery({ ...blank, text: '138-0013-5678' })).toEqual({ phone_suffix: '5678' })
  })
  it('an id that is no number finds nobody rather than everyone', () => {
    expect(searchQuery({ ...blank, by: 'id', text: '42' })).toEqual({ id: 42 })
    expect(searchQuery({ ...blank, by: 'id', text: 'abc' })).toEqual({ id: 0 })
  })
  it('ignores a tier or stage the API does not know', () => {
    expect(searchQuery({ ...blank, tier: 'diamond', lifecycle_stage: 'zombie' })).toEqual({})
  })
})

describe('customer service forms', () => {
  it('a points adjustment needs a non-zero whole number within the limit and a reason', () => {
    expect(pointsProblem(undefined, 'x')).toBe('cs.err.delta')
    expect(pointsProblem(0, 'x')).toBe('cs.err.delta')
    expect(pointsProblem(1.5, 'x')).toBe('cs.err.delta')
    expect(pointsProblem(10_000_001, 'x')).toBe('cs.err.delta_limit')
    expect(pointsProblem(-50, '  ')).toBe('cs.err.reason')
    expect(pointsProblem(-50, 'refund')).toBe('')
  })
  it('erasure needs the customer id typed exactly', () => {
    expect(erasureConfirmed(17, '17')).toBe(true)
    expect(erasureConfirmed(17, ' 17 ')).toBe(true)
    expect(erasureConfirmed(17, '1')).toBe(false)
    expect(erasureConfirmed(17, 'yes')).toBe(false)
  })
  it('only an available voucher can be voided', () => {
    expect(voidable({ status: 'available' })).toBe(true)
    for (const status of ['used', 'expired', 'void']) expect(voidable({ status })).toBe(false)
  })
})
