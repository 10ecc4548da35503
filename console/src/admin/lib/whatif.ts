// The builder's what-if: the most a campaign can issue and cost over its audience, from the
// audience size, the participant cap, the coupons' stock and per-user limits, and the budget.
// An upper bound by default (everyone in the audience takes part); `takeRate` scales it.

export interface WhatIfCoupon {
  /** fen */
  faceValue: number
  totalStock: number
  perUserLimit: number
}

export interface WhatIfInput {
  audienceSize: number
  participantCap: number | null
  coupons: WhatIfCoupon[]
  /** fen; null: no cap */
  budgetLimit: number | null
  /** the share of the audience expected to take part, 0..1 (1: the upper bound) */
  takeRate?: number
}

export type Limit = 'audience' | 'participant_cap' | 'stock' | 'budget'

export interface WhatIfCouponResult {
  issued: number
  /** fen */
  cost: number
  limitedBy: Limit
}

export interface WhatIfResult {
  participants: number
  coupons: WhatIfCouponResult[]
  issued: number
  /** fen */
  cost: number
  /** fen left of the budget at the end (null without a budget) */
  budgetLeft: number | null
  /** what stops the campaign first overall */
  limitedBy: Limit
}

/** The projection; all counts are whole vouchers and all money whole fen. */
export function whatIf(input: WhatIfInput): WhatIfResult {
  const rate = Math.min(1, Math.max(0, input.takeRate ?? 1))
  const reach = Math.floor(Math.max(0, input.audienceSize) * rate)
  const capped = input.participantCap !== null && input.participantCap < reach
  const participants = capped ? (input.participantCap as number) : reach
  const byPeople: Limit = capped ? 'participant_cap' : 'audience'

  let coupons: WhatIfCouponResult[] = input.coupons.map((c) => {
    const wanted = participants * Math.max(1, c.perUserLimit)
    const issued = Math.min(wanted, Math.max(0, c.totalStock))
    return { issued, cost: issued * c.faceValue, limitedBy: issued < wanted ? 'stock' : byPeople }
  })
  const unbounded = coupons.reduce((sum, c) => sum + c.cost, 0)
  const budget = input.budgetLimit
  if (budget !== null && unbounded > budget) {
    // Grabs interleave: each coupon gets its share of the budget, in whole vouchers.
    const share = budget / unbounded
    coupons = coupons.map((c, i) => {
      const issued = Math.floor(c.issued * share)
      return { issued, cost: issued * input.coupons[i].faceValue, limitedBy: 'budget' }
    })
  }
  const issued = coupons.reduce((sum, c) => sum + c.issued, 0)
  const cost = coupons.reduce((sum, c) => sum + c.cost, 0)
  let limitedBy: Limit = byPeople
  if (budget !== null && unbounded > budget) limitedBy = 'budget'
  else if (coupons.length && coupons.every((c) => c.limitedBy === 'stock')) limitedBy = 'stock'
  return { participants, coupons, issued, cost, budgetLeft: budget === null ? null : budget - cost, limitedBy }
}
