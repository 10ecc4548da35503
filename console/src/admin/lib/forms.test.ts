import { describe, expect, it } from 'vitest'
import { newCoupon, newForm, toCampaignIn } from './builder'
import { ApiError } from '@/api/client'
import { placeErrors } from './fields'
import { formPaths, formsFromStored, limit, newForms, newPrize } from './forms'

const messages = { badMoney: 'money?', badTime: 'time?' }
const base = (type: string) => {
  const form = newForm()
  form.type = type as never
  form.content['zh-CN'].title = 't'
  form.starts_at = '2026-12-12T10:00'
  form.ends_at = '2026-12-13T10:00'
  return form
}

describe('social forms in the builder', () => {
  it('reads the limits and defaults the server declares', () => {
    expect(limit('GroupSpec', 'size')).toEqual({ min: 2, max: 20 })
    expect(limit('PrizeIn', 'weight').max).toBe(1_000_000_000)
    const f = newForms()
    expect(f.bargain.hours).toBe(24)
    expect(f.draw.max_per_day).toBe(10)
    expect(f.draw.time_zone).toBe('Asia/Shanghai')
  })

  it('sends only the block of the type, money in fen', () => {
    const form = base('bargain')
    Object.assign(form.forms.bargain, { start_price: '100', floor_price: '1', cut_min: '0.5', cut_max: '5', helpers_needed: 10 })
    const { body, errors } = toCampaignIn(form, 'Asia/Shanghai', messages)
    expect(errors).toEqual({})
    expect(body.bargain).toEqual({
      start_price: 10000, floor_price: 100, cut_min: 50, cut_max: 500, helpers_needed: 10, help_limit: 1, hours: 24,
      reward: 'campaign',
    })
    expect(body.group).toBeUndefined()
    expect(body.draw).toBeUndefined()
  })

  it('mirrors the server cross-field checks on the fields', () => {
    const form = base('bargain')
    Object.assign(form.forms.bargain, { start_price: '1', floor_price: '2', cut_min: '0.05', cut_max: '0.01' })
    const { errors } = toCampaignIn(form, 'Asia/Shanghai', messages)
    expect(Object.keys(errors).sort()).toEqual(['bargain.cut_max', 'bargain.floor_price'])

    const packet = base('red_packet')
    Object.assign(packet.forms.red_packet, { initial_value: 10, cap: 15, helpers_needed: 10, min_increment: 1 })
    expect(Object.keys(toCampaignIn(packet, 'Asia/Shanghai', messages).errors)).toEqual(['red_packet.cap'])

    const group = base('group_buy')
    group.forms.group.reward = 'coupons'
    expect(Object.keys(toCampaignIn(group, 'Asia/Shanghai', messages).errors)).toEqual(['group.reward'])
    group.coupons.push({ ...newCoupon(['zh-CN']), face_value: '1', title: { 'zh-CN': 'c' } })
    const ok = toCampaignIn(group, 'Asia/Shanghai', messages)
    expect(ok.errors).toEqual({})
    expect(ok.body.group).toMatchObject({ size: 2, reward: 'coupons', reward_points: null })
  })

  it('takes a voucher red packet\'s values in yuan and sends fen, points as they are', () => {
    const coupon = { ...newCoupon(['zh-CN']), face_value: '1', title: { 'zh-CN': 'c' } }
    const packet = base('red_packet')
    packet.coupons.push(coupon)
    Object.assign(packet.forms.red_packet, { initial_value: 10, cap: 100, min_increment: 2, helpers_needed: 5 })
    expect(toCampaignIn(packet, 'Asia/Shanghai', messages).body.red_packet).toMatchObject({ initial_value: 10, cap: 100, min_increment: 2 })
    // as a voucher the yuan fields count, not the points typed before
    packet.forms.red_packet.claim_as = 'voucher'
    Object.assign(packet.forms.red_packet.yuan, { initial_value: '0.1', cap: '¥1', min_increment: '0.02' })
    const sent = toCampaignIn(packet, 'Asia/Shanghai', messages)
    expect(sent.errors).toEqual({})
    expect(sent.body.red_packet).toMatchObject({ claim_as: 'voucher', initial_value: 10, cap: 100, min_increment: 2, helpers_needed: 5 })
    // stored fen come back as yuan; the points fields keep their defaults
    const back = formsFromStored({ red_packet: sent.body.red_packet as Record<string, unknown> }).red_packet
    expect(back.yuan).toEqual({ initial_value: '0.10', cap: '1.00', min_increment: '0.02' })
    expect([back.initial_value, back.cap]).toEqual([0, null])
    // the money checks land on the fields, in fen: a bad amount, a missing cap, the room for the helps
    Object.assign(packet.forms.red_packet.yuan, { initial_value: '0.001', cap: '', min_increment: '' })
    expect(toCampaignIn(packet, 'Asia/Shanghai', messages).errors).toEqual({
      'red_packet.initial_value': 'b.bad_money', 'red_packet.cap': 'fm.required',
    })
    Object.assign(packet.forms.red_packet.yuan, { initial_value: '0.95', cap: '1', min_increment: '0.02' })
    expect(Object.keys(toCampaignIn(packet, 'Asia/Shanghai', messages).errors)).toEqual(['red_packet.cap'])
    // a blank increment is the server's default, 1 fen
    Object.assign(packet.forms.red_packet.yuan, { initial_value: '0', cap: '1' })
    packet.forms.red_packet.yuan.min_increment = ''
    expect(toCampaignIn(packet, 'Asia/Shanghai', messages).body.red_packet).toMatchObject({ initial_value: 0, cap: 100, min_increment: 1 })
  })

  it('carries a bargain\'s reward, a red packet\'s claim_as and a draw\'s tasks, and reads them back', () => {
    const coupon = () => ({ ...newCoupon(['zh-CN']), face_value: '1', title: { 'zh-CN': 'c' } })
    const bargain = base('bargain')
    Object.assign(bargain.forms.bargain, { start_price: '100', floor_price: '1', cut_min: '0.5', cut_max: '5' })
    bargain.forms.bargain.reward = 'cut_voucher'
    // a cut voucher is one of the campaign's single coupon
    expect(Object.keys(toCampaignIn(bargain, 'Asia/Shanghai', messages).errors)).toEqual(['bargain.reward'])
    bargain.coupons.push(coupon())
    const sentBargain = toCampaignIn(bargain, 'Asia/Shanghai', messages)
    expect(sentBargain.errors).toEqual({})
    expect(sentBargain.body.bargain).toMatchObject({ reward: 'cut_voucher' })
    expect(formsFromStored({ bargain: sentBargain.body.bargain as Record<string, unknown> }).bargain.reward).toBe('cut_voucher')
    // an assist has no price to cut: its reward is the campaign's whatever the form held
    const assist = base('assist')
    assist.forms.bargain.helpers_needed = 3
    assist.forms.bargain.reward = 'cut_voucher'
    expect(toCampaignIn(assist, 'Asia/Shanghai', messages).body.bargain).toMatchObject({ reward: 'campaign' })

    const packet = base('red_packet')
    Object.assign(packet.forms.red_packet, { initial_value: 100, cap: 1000, helpers_needed: 5 })
    expect(toCampaignIn(packet, 'Asia/Shanghai', messages).body.red_packet).toMatchObject({ claim_as: 'points' })
    packet.forms.red_packet.claim_as = 'voucher'
    Object.assign(packet.forms.red_packet.yuan, { initial_value: '1', cap: '10' })
    expect(Object.keys(toCampaignIn(packet, 'Asia/Shanghai', messages).errors)).toEqual(['red_packet.claim_as'])
    packet.coupons.push(coupon())
    const sentPacket = toCampaignIn(packet, 'Asia/Shanghai', messages)
    expect(sentPacket.errors).toEqual({})
    expect(sentPacket.body.red_packet).toMatchObject({ claim_as: 'voucher', initial_value: 100, cap: 1000 })
    expect(formsFromStored({ red_packet: sentPacket.body.red_packet as Record<string, unknown> }).red_packet.claim_as).toBe('voucher')
    expect(newForms().red_packet.claim_as).toBe('points')

    const draw = base('lucky_draw')
    draw.forms.draw.prizes[0].points = 20
    expect(toCampaignIn(draw, 'Asia/Shanghai', messages).body.draw).toMatchObject({ task_campaign_ids: [] })
    draw.forms.draw.task_campaign_ids = [7, 3]
    const sentDraw = toCampaignIn(draw, 'Asia/Shanghai', messages)
    expect(sentDraw.errors).toEqual({})
    expect(sentDraw.body.draw).toMatchObject({ task_campaign_ids: [7, 3] })
    expect(formsFromStored({ draw: sentDraw.body.draw as Record<string, unknown> }).draw.task_campaign_ids).toEqual([7, 3])
    draw.forms.draw.task_campaign_ids = Array.from({ length: 21 }, (_, i) => i + 1)
    expect(Object.keys(toCampaignIn(draw, 'Asia/Shanghai', messages).errors)).toEqual(['draw.task_campaign_ids'])
  })

  it('checks the prize table: keys, the fallback slot, coupon indexes', () => {
    const form = base('lucky_draw')
    const d = form.forms.draw
    d.prizes = [{ ...newPrize('coupon', 'first'), coupon_index: 1 }, { ...newPrize('none', 'Bad Key') }, { ...newPrize('points', 'first'), points: 5 }]
    d.sold_out_to = 'first'
    const { errors } = toCampaignIn(form, 'Asia/Shanghai', messages)
    expect(Object.keys(errors).sort()).toEqual([
      'draw.prizes.0.coupon_index', 'draw.prizes.1.key', 'draw.prizes.2.key', 'draw.sold_out_to',
    ])
    const good = base('lucky_draw')
    good.forms.draw.prizes[0].points = 20
    good.forms.draw.prizes[0].label = ' 20 积分 '
    const sent = toCampaignIn(good, 'Asia/Shanghai', messages)
    expect(sent.errors).toEqual({})
    expect(sent.body.draw).toMatchObject({
      prizes: [{ key: 'points', kind: 'points', label: '20 积分', points: 20, coupon_index: null }, { key: 'none', weight: 9 }],
      sold_out_to: 'none',
    })
    expect(formsFromStored({ draw: sent.body.draw as Record<string, unknown> }).draw.prizes[0].label).toBe('20 积分')
  })

  it("pins the server's 422 on the block's fields", () => {
    const error = new ApiError(422, 'validation_failed', 'invalid', {
      errors: [
        { field: 'draw.prizes.1.weight', message: 'Input should be less than or equal to 1000000000' },
        { field: 'draw', message: "Value error, unknown time_zone 'Mars/Base'" },
        { field: 'group.size', message: 'Input should be greater than or equal to 2' },
        { field: 'draw.prizes.5.key', message: 'no such row shown' },
        { field: 'bargain.reward', message: "Input should be 'campaign' or 'cut_voucher'" },
        { field: 'draw.task_campaign_ids.2', message: 'Input should be greater than 0' },
      ],
    })
    expect(placeErrors(error, new Set(formPaths(2)))).toEqual({
      fields: {
        'draw.prizes.1.weight': 'Input should be less than or equal to 1000000000',
        draw: "Value error, unknown time_zone 'Mars/Base'",
        'group.size': 'Input should be greater than or equal to 2',
        // a row the form does not show: its closest shown parent, the table
        'draw.prizes': 'no such row shown',
        'bargain.reward': "Input should be 'campaign' or 'cut_voucher'",
        // one id of the task list: the list
        'draw.task_campaign_ids': 'Input should be greater than 0',
      },
      general: [],
    })
  })
})
