import { describe, expect, it } from 'vitest'
import { whatIf } from './whatif'

const coupon = { faceValue: 1000, totalStock: 500, perUserLimit: 1 }

describe('what-if', () => {
  it('is bounded by the audience', () => {
    const r = whatIf({ audienceSize: 120, participantCap: null, coupons: [coupon], budgetLimit: null })
    expect(r).toMatchObject({ participants: 120, issued: 120, cost: 120_000, budgetLeft: null, limitedBy: 'audience' })
  })
  it('by the participant cap', () => {
    const r = whatIf({ audienceSize: 120, participantCap: 50, coupons: [coupon], budgetLimit: null })
    expect(r).toMatchObject({ participants: 50, issued: 50, limitedBy: 'participant_cap' })
  })
  it('by the stock, per-user limits counted', () => {
    const r = whatIf({ audienceSize: 400, participantCap: null, coupons: [{ ...coupon, perUserLimit: 2 }], budgetLimit: null })
    expect(r.coupons[0]).toEqual({ issued: 500, cost: 500_000, limitedBy: 'stock' })
    expect(r.limitedBy).toBe('stock')
  })
  it('by the budget, in whole vouchers, shared between coupons', () => {
    const r = whatIf({
      audienceSize: 100,
      participantCap: null,
      coupons: [coupon, { faceValue: 300, totalStock: 1000, perUserLimit: 1 }],
      budgetLimit: 65_000,
    })
    // Unbounded: 100 × ¥10 + 100 × ¥3 = ¥1,300; the budget is half of it.
    expect(r.coupons.map((c) => c.issued)).toEqual([50, 50])
    expect(r.cost).toBe(65_000)
    expect(r.budgetLeft).toBe(0)
    expect(r.limitedBy).toBe('budget')
  })
  it('scales by the take rate and never goes negative', () => {
    const r = whatIf({ audienceSize: 1000, participantCap: null, coupons: [coupon], budgetLimit: 1_000_000, takeRate: 0.1 })
    expect(r).toMatchObject({ participants: 100, issued: 100, cost: 100_000, budgetLeft: 900_000 })
    expect(whatIf({ audienceSize: -5, participantCap: null, coupons: [], budgetLimit: null }).participants).toBe(0)
  })
})
