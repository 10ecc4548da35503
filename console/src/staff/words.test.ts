import { describe, expect, it } from 'vitest'
import { ApiError } from '@/api/client'
import { has } from '@/lib/i18n'
import './messages'
import { explain, faceText, titleOf } from './words'
import { newIdempotencyKey, normalizeScan } from './scan'

// Every code the staff routes may answer (handlers/staff/*.py errors=...).
const CODES = [
  'qr_expired', 'qr_invalid', 'voucher_not_found', 'rate_limited', 'voucher_already_used', 'voucher_expired',
  'redeem_period_over', 'voucher_not_yet_valid', 'store_not_allowed', 'channel_not_allowed', 'min_spend_not_met',
  'voucher_not_stackable', 'conflict', 'already_reversed', 'reversal_window_passed', 'not_found',
  'invalid_credentials', 'too_many_attempts', 'forbidden', 'validation_failed',
]

describe('refusals in plain words', () => {
  it('has every staff error code in both languages', () => {
    for (const code of CODES) {
      expect(has(`error.${code}`, 'zh-CN'), code).toBe(true)
      expect(has(`error.${code}`, 'en'), code).toBe(true)
    }
  })
  it('formats times in the zone and money in yuan', () => {
    const used = { code: 'voucher_already_used', message: 'x', details: { used_at: '2026-12-03T02:04:00+00:00', store_name: '静安店' } }
    expect(explain(used, 'zh-CN', 'Asia/Shanghai')).toBe('这张券已于 2026-12-03 10:04 在 静安店 使用过')
    expect(explain(used, 'en', 'Asia/Shanghai')).toBe('This voucher was already used on 2026-12-03 10:04 at 静安店')
    const spend = new ApiError(409, 'min_spend_not_met', 'x', { min_spend: 10000, order_amount: null })
    expect(explain(spend, 'zh-CN')).toBe('订单金额未达到最低消费 ¥100.00，请输入订单金额')
  })
  it('shows a dash for a detail the server could not name, and the API message for unknown codes', () => {
    const used = { code: 'voucher_already_used', message: 'x', details: { used_at: null, store_name: null } }
    expect(explain(used, 'en')).toBe('This voucher was already used on — at —')
    expect(explain({ code: 'brand_new', message: 'the server says why' }, 'en')).toBe('the server says why')
    expect(explain(new TypeError('fetch failed'), 'en')).toBe('Network error, please retry')
  })
})

describe('the voucher face', () => {
  it('reads each kind', () => {
    expect(faceText({ kind: 'fixed', face_value: 1000, min_spend: 0 }, 'zh-CN')).toBe('立减 ¥10.00')
    expect(faceText({ kind: 'fixed', face_value: 1000, min_spend: 5000 }, 'en')).toBe('¥10.00 off (minimum spend ¥50.00)')
    expect(faceText({ kind: 'threshold', face_value: 2000, min_spend: 10000 }, 'zh-CN')).toBe('满 ¥100.00 减 ¥20.00')
    expect(faceText({ kind: 'percent', face_value: 3000, percent_off: 15, min_spend: 0 }, 'zh-CN')).toBe('8.5 折，最多减 ¥30.00')
    expect(faceText({ kind: 'percent', face_value: 3000, percent_off: 15, min_spend: 0 }, 'en')).toBe('15% off, up to ¥30.00')
    expect(faceText({ kind: 'free_item', face_value: 1800, min_spend: 0, item_name: 'Latte' }, 'en')).toBe('Free: Latte')
  })
  it('picks the title in the language', () => {
    expect(titleOf({ 'zh-CN': '满减券', en: 'Voucher' }, 'en')).toBe('Voucher')
    expect(titleOf({ 'zh-CN': '满减券' }, 'en')).toBe('满减券')
  })
})

describe('scans', () => {
  it('drops what a scanner appends', () => {
    expect(normalizeScan(' 1234567890123456\r\n')).toBe('1234567890123456')
    expect(normalizeScan('\t')).toBe('')
  })
  it('makes a new key each time', () => {
    const a = newIdempotencyKey()
    expect(a).toMatch(/^till-[0-9a-f]{32}$/)
    expect(newIdempotencyKey()).not.toBe(a)
    expect(newIdempotencyKey((b) => b.fill(255))).toBe(`till-${'ff'.repeat(16)}`)
  })
})
