import { describe, expect, it } from 'vitest'
import { newPred } from './rule'
import { newCoupon, newForm, toCampaignIn } from './builder'

const messages = { badMoney: 'money?', badTime: 'time?' }

describe('builder form → CampaignIn', () => {
  it('sends yuan as fen and Shanghai times as UTC', () => {
    const form = newForm()
    form.type = 'flash_sale'
    form.content['zh-CN'].title = '双十二秒杀'
    form.starts_at = '2026-12-12T10:00'
    form.ends_at = '2026-12-12 22:00'
    form.visible_from = '2026-12-10T08:00'
    form.budget_limit = '5,000.5'
    const coupon = newCoupon(['zh-CN'])
    coupon.title['zh-CN'] = '立减 19.9'
    coupon.face_value = '19.9'
    coupon.validity_kind = 'fixed'
    coupon.valid_from = '2026-12-12T10:00'
    coupon.valid_until = '2026-12-31T23:59'
    coupon.grab_starts_at = '2026-12-12T12:00'
    form.coupons.push(coupon)
    const tier = newPred('tier')
    tier.values = ['gold']
    form.rule.children.push(tier)
    const { body, errors } = toCampaignIn(form, 'Asia/Shanghai', messages)
    expect(errors).toEqual({})
    expect(body).toMatchObject({
      type: 'flash_sale',
      starts_at: '2026-12-12T02:00:00Z',
      ends_at: '2026-12-12T14:00:00Z',
      visible_from: '2026-12-10T00:00:00Z',
      redeem_until: null,
      budget_limit: 500050,
      store_ids: null,
      audience_rule: { all: [{ tier: ['gold'] }] },
      coupons: [
        {
          kind: 'fixed', title: { 'zh-CN': '立减 19.9' }, face_value: 1990, min_spend: 0,
          grab_starts_at: '2026-12-12T04:00:00Z',
          validity: { kind: 'fixed', valid_from: '2026-12-12T02:00:00Z', valid_until: '2026-12-31T15:59:00Z' },
        },
      ],
    })
  })
  it('names the fields it cannot convert by the server\'s paths', () => {
    const form = newForm()
    form.starts_at = 'soon'
    form.budget_limit = '12.345'
    const coupon = newCoupon(['zh-CN'])
    coupon.face_value = 'ten'
    form.coupons.push(coupon)
    const { errors } = toCampaignIn(form, 'Asia/Shanghai', messages)
    expect(errors).toEqual({
      starts_at: 'time?', ends_at: 'time?', budget_limit: 'money?', 'coupons.0.face_value': 'money?',
    })
  })
  it('sends a challenge\'s goal, spend in fen', () => {
    const form = newForm()
    form.type = 'challenge'
    form.goal_metric = 'spend'
    form.goal_target = '100'
    expect(toCampaignIn(form, 'UTC', messages).body.goal).toEqual({ metric: 'spend', target: 10000, window_days: null })
  })
})
