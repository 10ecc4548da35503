import { describe, expect, it } from 'vitest'
import { fromJson, isComplete, newGroup, newPred, toJson } from './rule'

describe('rule builder → JSON', () => {
  it('writes groups, negation and every kind of value', () => {
    const tier = newPred('tier')
    tier.values = ['gold', 'platinum']
    const spend = newPred('spend_at_least')
    spend.days = 90
    spend.text = '199.9'
    const visits = newPred('visits_at_least')
    visits.text = '3'
    const stores = newPred('visited_store')
    stores.values = ['12', '7']
    const churned = newPred('lifecycle_stage')
    churned.values = ['churned']
    churned.negate = true
    const segment = newPred('segment')
    segment.text = ' vip '
    const days = newPred('registered_within_days')
    days.text = '30'
    const any = newGroup('any', [visits, stores])
    const root = newGroup('all', [tier, spend, any, churned, segment, days])
    expect(toJson(root)).toEqual({
      all: [
        { tier: ['gold', 'platinum'] },
        { spend_at_least: { days: 90, amount: 19990 } },
        { any: [{ visits_at_least: { days: 30, count: 3 } }, { visited_store: [12, 7] }] },
        { not: { lifecycle_stage: ['churned'] } },
        { segment: 'vip' },
        { registered_within_days: 30 },
      ],
    })
  })
  it('leaves out what is not filled in, and says so', () => {
    const tier = newPred('tier')
    const city = newPred('city')
    city.values = ['Shanghai']
    const root = newGroup('all', [tier, newGroup('any')])
    expect(toJson(root)).toBeNull()
    root.children.push(city)
    expect(toJson(root)).toEqual({ all: [{ city: ['Shanghai'] }] })
    expect(isComplete(root)).toBe(false)
    const badId = newPred('holds_coupon')
    badId.text = '0'
    expect(toJson(badId)).toBeNull()
    const badMoney = newPred('spend_at_least')
    badMoney.text = '1.234'
    expect(toJson(badMoney)).toBeNull()
  })
  it('negates a whole group', () => {
    const city = newPred('city')
    city.values = ['Beijing']
    const group = newGroup('any', [city])
    group.negate = true
    expect(toJson(newGroup('all', [group]))).toEqual({ all: [{ not: { any: [{ city: ['Beijing'] }] } }] })
  })
})

describe('JSON → rule builder', () => {
  const samples = [
    { all: [{ tier: ['gold'] }, { not: { any: [{ city: ['Beijing', 'Shanghai'] }, { holds_coupon: 9 }] } }] },
    { any: [{ spend_at_least: { days: 30, amount: 1 } }, { visits_at_least: { days: 365, count: 0 } }] },
    { all: [{ segment: 'lapsed' }, { registered_within_days: 7 }, { preferred_store: [3] }] },
    { all: [{ interest_tags_any: ['coffee'] }, { lifecycle_stage: ['new', 'active'] }, { completed_campaign: 4 }] },
  ]
  it('round-trips', () => {
    for (const rule of samples) expect(toJson(fromJson(rule))).toEqual(rule)
  })
  it('puts a lone predicate in a group and accepts single values', () => {
    expect(toJson(fromJson({ tier: 'gold' }))).toEqual({ all: [{ tier: ['gold'] }] })
    expect(toJson(fromJson({ not: { joined_campaign: 2 } }))).toEqual({ all: [{ not: { joined_campaign: 2 } }] })
  })
  it('keeps a double negation', () => {
    expect(toJson(fromJson({ all: [{ not: { not: { city: ['X'] } } }] }))).toEqual({
      all: [{ not: { all: [{ not: { city: ['X'] } }] } }],
    })
  })
  it('refuses what is not a rule', () => {
    expect(() => fromJson({ bogus: 1 })).toThrow()
    expect(() => fromJson({ all: 3 })).toThrow()
    expect(() => fromJson({ tier: ['a'], city: ['b'] })).toThrow()
  })
})
