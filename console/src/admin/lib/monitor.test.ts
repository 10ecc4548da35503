import { describe, expect, it } from 'vitest'
import { locale } from '@/lib/i18n'
import '../messages'
import { refusalList, refusalTotal } from './monitor'

describe('monitor refusals', () => {
  it('orders reasons, labels them and drops zeros', () => {
    locale.value = 'en'
    const list = refusalList({ limit: 10, sold_out: 50, odd_reason: 2, ended: 0 })
    expect(list.map((r) => r.reason)).toEqual(['sold_out', 'limit', 'odd_reason'])
    expect(list[0]).toEqual({ reason: 'sold_out', label: 'Sold out', count: 50 })
    expect(list[2].label).toBe('odd_reason')
    expect(refusalTotal({ limit: 10, sold_out: 50 })).toBe(60)
    expect(refusalList(undefined)).toEqual([])
  })
})
