// The social forms' blocks in the builder (issue 17): group buy (`group`), bargain and
// assist (`bargain`), expanding red packet (`red_packet`) and lucky draw (`draw`). Their
// limits and defaults are the server's (services/campaigns/spec.py), read from the OpenAPI
// document at build time (vite.config.ts, specLimits), and the checks below mirror the
// server's so a mistake shows on its field before anything is sent; what only the server
// can check (a time zone it does not know) still comes back as a 422 placed by lib/fields.ts.
// Money in yuan on the form, fen in the body, as everywhere in the builder.
import limits from 'virtual:spec-limits'
import { fenToYuan, yuanToFen } from '@/lib/money'

export const FORM_TYPES = ['group_buy', 'bargain', 'assist', 'red_packet', 'lucky_draw'] as const
export type FormType = (typeof FORM_TYPES)[number]
/** The spec block each form type carries. */
export const BLOCK_OF: Record<FormType, 'group' | 'bargain' | 'red_packet' | 'draw'> = {
  group_buy: 'group', bargain: 'bargain', assist: 'bargain', red_packet: 'red_packet', lucky_draw: 'draw',
}
export const PRIZE_KINDS = ['coupon', 'points', 'none'] as const
/** What a bargain's claim pays (BargainSpec.reward): `cut_voucher` is for a bargain only. */
export const BARGAIN_REWARDS = ['campaign', 'cut_voucher'] as const
/** How a red packet is claimed (RedPacketSpec.claim_as): `voucher` values are fen. */
export const CLAIM_AS = ['points', 'voucher'] as const
/** A bargain's prices: fen in the body, typed in yuan. */
export const BARGAIN_MONEY = ['start_price', 'floor_price', 'cut_min', 'cut_max'] as const
/** A red packet's values: points, or (claimed as a voucher) fen in the body, typed in yuan. */
export const RED_PACKET_VALUES = ['initial_value', 'cap', 'min_increment'] as const
export type RedPacketValue = (typeof RED_PACKET_VALUES)[number]
/** Whether a red packet's field is money (yuan on the form) for this way of claiming it. */
export const isRedPacketMoney = (field: string, claimAs: string): field is RedPacketValue =>
  claimAs === 'voucher' && (RED_PACKET_VALUES as readonly string[]).includes(field)

/** The fields of each block a message can be pinned on (the block itself too). */
export const BLOCK_FIELDS: Record<string, readonly string[]> = {
  group: ['size', 'group_hours', 'max_open_per_customer', 'virtual_fill', 'reward', 'reward_points'],
  bargain: ['start_price', 'floor_price', 'cut_min', 'cut_max', 'helpers_needed', 'help_limit', 'hours', 'reward'],
  red_packet: ['initial_value', 'cap', 'min_increment', 'helpers_needed', 'help_limit', 'hours', 'claim_as'],
  draw: ['prizes', 'sold_out_to', 'free_per_day', 'points_cost', 'max_per_day', 'task_campaign_ids', 'time_zone'],
}
/** Every path of the blocks the builder shows, for lib/fields.ts's placeErrors. */
export function formPaths(prizes: number): string[] {
  const paths: string[] = []
  for (const [block, fields] of Object.entries(BLOCK_FIELDS)) paths.push(block, ...fields.map((f) => `${block}.${f}`))
  for (let i = 0; i < prizes; i++)
    for (const f of ['', '.key', '.label', '.kind', '.weight', '.stock', '.coupon_index', '.points']) paths.push(`draw.prizes.${i}${f}`)
  return paths
}

export interface Limit {
  min?: number
  max?: number
}
/** A field's range as the server declares it: `limit('GroupSpec', 'size')` → {min: 2, max: 20}. */
export function limit(schema: string, field: string): Limit {
  const l = limits[schema]?.[field]
  return { min: l?.minimum, max: l?.maximum }
}
function dflt<T>(schema: string, field: string, fallback: T): T {
  const value = limits[schema]?.[field]?.default
  return value === undefined ? fallback : (value as T)
}

export interface GroupForm {
  size: number
  group_hours: number
  max_open_per_customer: number
  virtual_fill: boolean
  reward: 'coupons' | 'points'
  reward_points: number | null
}
export interface BargainForm {
  start_price: string
  floor_price: string
  cut_min: string
  cut_max: string
  helpers_needed: number | null
  help_limit: number
  hours: number
  reward: (typeof BARGAIN_REWARDS)[number]
}
export interface RedPacketForm {
  initial_value: number
  cap: number | null
  min_increment: number
  helpers_needed: number | null
  help_limit: number
  hours: number
  claim_as: (typeof CLAIM_AS)[number]
  /** The RED_PACKET_VALUES in yuan, sent (as fen) instead of the numbers above when
   * claim_as is `voucher`. */
  yuan: Record<RedPacketValue, string>
}
export interface PrizeForm {
  key: string
  label: string
  kind: (typeof PRIZE_KINDS)[number]
  weight: number
  stock: number | null
  coupon_index: number | null
  points: number | null
}
export interface DrawForm {
  prizes: PrizeForm[]
  sold_out_to: string
  free_per_day: number
  points_cost: number
  max_per_day: number
  /** campaigns whose completed participations buy a draw each */
  task_campaign_ids: number[]
  time_zone: string
}
export interface FormsForm {
  group: GroupForm
  bargain: BargainForm
  red_packet: RedPacketForm
  draw: DrawForm
}

const yuanOf = (fen: number): string => (fen ? fenToYuan(fen) : '')
/** A red packet's stored fen (a voucher's) as the form's yuan text; a missing cap is blank. */
const packetYuan = (stored: Partial<Record<RedPacketValue, number | null>>): Record<RedPacketValue, string> => {
  const fen = (field: RedPacketValue) => stored[field] ?? dflt<number | null>('RedPacketSpec', field, null)
  return Object.fromEntries(RED_PACKET_VALUES.map((f) => [f, fen(f) === null ? '' : fenToYuan(fen(f) as number)])) as Record<RedPacketValue, string>
}

export function newPrize(kind: PrizeForm['kind'] = 'none', key = ''): PrizeForm {
  return { key, label: '', kind, weight: 1, stock: null, coupon_index: kind === 'coupon' ? 0 : null, points: null }
}

export function newForms(): FormsForm {
  return {
    group: {
      size: limit('GroupSpec', 'size').min ?? 2, group_hours: 24,
      max_open_per_customer: dflt('GroupSpec', 'max_open_per_customer', 1),
      virtual_fill: dflt('GroupSpec', 'virtual_fill', false), reward: 'points', reward_points: null,
    },
    bargain: {
      start_price: yuanOf(dflt('BargainSpec', 'start_price', 0)), floor_price: yuanOf(dflt('BargainSpec', 'floor_price', 0)),
      cut_min: fenToYuan(dflt('BargainSpec', 'cut_min', 1)), cut_max: fenToYuan(dflt('BargainSpec', 'cut_max', 1)),
      helpers_needed: dflt<number | null>('BargainSpec', 'helpers_needed', null), help_limit: dflt('BargainSpec', 'help_limit', 1),
      hours: dflt('BargainSpec', 'hours', 24), reward: dflt<BargainForm['reward']>('BargainSpec', 'reward', 'campaign'),
    },
    red_packet: {
      initial_value: 0, cap: null, min_increment: dflt('RedPacketSpec', 'min_increment', 1), helpers_needed: null,
      help_limit: dflt('RedPacketSpec', 'help_limit', 1), hours: dflt('RedPacketSpec', 'hours', 24),
      claim_as: dflt<RedPacketForm['claim_as']>('RedPacketSpec', 'claim_as', 'points'), yuan: packetYuan({}),
    },
    draw: {
      prizes: [newPrize('points', 'points'), { ...newPrize('none', 'none'), weight: 9 }], sold_out_to: 'none',
      free_per_day: dflt('DrawIn', 'free_per_day', 1), points_cost: dflt('DrawIn', 'points_cost', 0),
      max_per_day: dflt('DrawIn', 'max_per_day', 10), task_campaign_ids: [], time_zone: dflt('DrawIn', 'time_zone', 'Asia/Shanghai'),
    },
  }
}

/** The words the checks say (i18n keys of messages.ts, with their parameters). */
export type Say = (key: string, params?: Record<string, string | number>) => string

/**
 * The block for `type` as the API takes it, and the field errors (path → message) under the
 * paths the server uses (`bargain.floor_price`, `draw.prizes.1.weight`). `coupons` is how
 * many coupons the campaign has (a coupon prize names one by index).
 */
export function formBlock(type: string, f: FormsForm, coupons: number, say: Say): { block: Record<string, unknown> | null; errors: Record<string, string> } {
  const errors: Record<string, string> = {}
  const range = (path: string, schema: string, field: string, value: number | null, required = true) => {
    if (value === null || value === undefined || Number.isNaN(value)) {
      if (required) errors[path] ??= say('fm.required')
      return
    }
    const { min, max } = limit(schema, field)
    if (!Number.isInteger(value) || (min !== undefined && value < min) || (max !== undefined && value > max))
      errors[path] ??= say('fm.range', { min: min ?? '−∞', max: max ?? '∞' })
  }
  const fen = (path: string, schema: string, field: string, text: string, required: boolean): number | null => {
    if (!text.trim()) {
      if (required) errors[path] = say('fm.required')
      return required ? null : dflt(schema, field, 0)
    }
    const value = yuanToFen(text)
    if (value === null) {
      errors[path] = say('b.bad_money')
      return null
    }
    range(path, schema, field, value)
    return value
  }
  if (type === 'group_buy') {
    const g = f.group
    range('group.size', 'GroupSpec', 'size', g.size)
    range('group.group_hours', 'GroupSpec', 'group_hours', g.group_hours)
    range('group.max_open_per_customer', 'GroupSpec', 'max_open_per_customer', g.max_open_per_customer)
    if (g.reward === 'points') range('group.reward_points', 'GroupSpec', 'reward_points', g.reward_points)
    else if (!coupons) errors['group.reward'] = say('fm.group_needs_coupon')
    const block = {
      size: g.size, group_hours: g.group_hours, max_open_per_customer: g.max_open_per_customer, virtual_fill: g.virtual_fill,
      reward: g.reward, reward_points: g.reward === 'points' ? g.reward_points : null,
    }
    return { block, errors }
  }
  if (type === 'bargain' || type === 'assist') {
    const b = f.bargain
    const assist = type === 'assist'
    const start = fen('bargain.start_price', 'BargainSpec', 'start_price', b.start_price, !assist)
    const floor = fen('bargain.floor_price', 'BargainSpec', 'floor_price', b.floor_price, false)
    const cutMin = fen('bargain.cut_min', 'BargainSpec', 'cut_min', b.cut_min, true)
    const cutMax = fen('bargain.cut_max', 'BargainSpec', 'cut_max', b.cut_max, true)
    range('bargain.helpers_needed', 'BargainSpec', 'helpers_needed', b.helpers_needed, assist)
    range('bargain.help_limit', 'BargainSpec', 'help_limit', b.help_limit)
    range('bargain.hours', 'BargainSpec', 'hours', b.hours)
    if (!assist && start !== null && floor !== null) {
      if (floor >= start) errors['bargain.floor_price'] ??= say('fm.floor_below_start')
      else if (b.helpers_needed && start - floor < b.helpers_needed) errors['bargain.helpers_needed'] ??= say('fm.fen_per_helper')
    }
    if (!assist && cutMin !== null && cutMax !== null && cutMin > cutMax) errors['bargain.cut_max'] ??= say('fm.cut_order')
    // An assist has no price to cut: the server refuses cut_voucher there, so it never goes.
    const reward = assist ? 'campaign' : b.reward
    if (reward === 'cut_voucher' && coupons !== 1) errors['bargain.reward'] = say('fm.voucher_one_coupon')
    const block = {
      start_price: start ?? 0, floor_price: floor ?? 0, cut_min: cutMin, cut_max: cutMax,
      helpers_needed: b.helpers_needed || null, help_limit: b.help_limit, hours: b.hours, reward,
    }
    return { block, errors }
  }
  if (type === 'red_packet') {
    const r = f.red_packet
    // Claimed as a voucher, the values are money: typed in yuan, checked and sent as fen.
    const v = { initial_value: r.initial_value as number | null, cap: r.cap, min_increment: r.min_increment as number | null }
    for (const field of RED_PACKET_VALUES) {
      const path = `red_packet.${field}`
      if (isRedPacketMoney(field, r.claim_as))
        v[field] = fen(path, 'RedPacketSpec', field, r.yuan[field], limits.RedPacketSpec?.[field]?.required === true)
      else range(path, 'RedPacketSpec', field, r[field])
    }
    for (const field of ['helpers_needed', 'help_limit', 'hours'] as const) range(`red_packet.${field}`, 'RedPacketSpec', field, r[field])
    if (v.cap !== null && v.initial_value !== null && v.min_increment !== null && r.helpers_needed !== null
      && v.cap - v.initial_value < r.helpers_needed * v.min_increment)
      errors['red_packet.cap'] ??= say('fm.cap_room')
    if (r.claim_as === 'voucher' && coupons !== 1) errors['red_packet.claim_as'] = say('fm.voucher_one_coupon')
    const block = {
      initial_value: v.initial_value, cap: v.cap, min_increment: v.min_increment, helpers_needed: r.helpers_needed,
      help_limit: r.help_limit, hours: r.hours, claim_as: r.claim_as,
    }
    return { block, errors }
  }
  if (type === 'lucky_draw') {
    const d = f.draw
    const { minItems, maxItems } = limits.DrawIn?.prizes ?? {}
    if ((minItems !== undefined && d.prizes.length < minItems) || (maxItems !== undefined && d.prizes.length > maxItems))
      errors['draw.prizes'] = say('fm.prize_count', { min: minItems ?? 0, max: maxItems ?? '∞' })
    const pattern = new RegExp(limits.PrizeIn?.key?.pattern ?? '.*')
    const seen = new Set<string>()
    d.prizes.forEach((p, i) => {
      const at = `draw.prizes.${i}`
      if (!pattern.test(p.key)) errors[`${at}.key`] = say('fm.prize_key')
      else if (seen.has(p.key)) errors[`${at}.key`] = say('fm.prize_key_twice')
      seen.add(p.key)
      const labelMax = limits.PrizeIn?.label?.maxLength
      if (labelMax !== undefined && p.label.trim().length > labelMax) errors[`${at}.label`] = say('fm.range', { min: 1, max: labelMax })
      range(`${at}.weight`, 'PrizeIn', 'weight', p.weight)
      range(`${at}.stock`, 'PrizeIn', 'stock', p.stock, false)
      if (p.kind === 'coupon') {
        range(`${at}.coupon_index`, 'PrizeIn', 'coupon_index', p.coupon_index)
        if (p.coupon_index !== null && p.coupon_index >= coupons) errors[`${at}.coupon_index`] ??= say('fm.no_such_coupon')
      }
      if (p.kind === 'points') range(`${at}.points`, 'PrizeIn', 'points', p.points)
    })
    const total = d.prizes.reduce((sum, p) => sum + (p.weight || 0), 0)
    const maxTotal = limit('PrizeIn', 'weight').max ?? Infinity
    if (total < 1 || total > maxTotal) errors['draw.prizes'] ??= say('fm.weight_total', { max: maxTotal })
    const target = d.prizes.find((p) => p.key === d.sold_out_to)
    if (!target || target.stock !== null || target.kind === 'coupon') errors['draw.sold_out_to'] = say('fm.sold_out_to')
    range('draw.free_per_day', 'DrawIn', 'free_per_day', d.free_per_day)
    range('draw.points_cost', 'DrawIn', 'points_cost', d.points_cost)
    range('draw.max_per_day', 'DrawIn', 'max_per_day', d.max_per_day)
    const maxTasks = limits.DrawIn?.task_campaign_ids?.maxItems
    if (maxTasks !== undefined && d.task_campaign_ids.length > maxTasks)
      errors['draw.task_campaign_ids'] = say('fm.range', { min: 0, max: maxTasks })
    else if (new Set(d.task_campaign_ids).size !== d.task_campaign_ids.length) errors['draw.task_campaign_ids'] = say('fm.task_twice')
    const block = {
      prizes: d.prizes.map((p) => ({
        key: p.key, kind: p.kind, label: p.label.trim() || null, weight: p.weight, stock: p.stock,
        coupon_index: p.kind === 'coupon' ? p.coupon_index : null, points: p.kind === 'points' ? p.points : null,
      })),
      sold_out_to: d.sold_out_to, free_per_day: d.free_per_day, points_cost: d.points_cost, max_per_day: d.max_per_day,
      task_campaign_ids: [...d.task_campaign_ids], time_zone: d.time_zone.trim(),
    }
    return { block, errors }
  }
  return { block: null, errors }
}

type Stored = Record<string, unknown> | null | undefined

/** A stored campaign's block back into the forms (to edit it). */
export function formsFromStored(c: { group?: Stored; bargain?: Stored; red_packet?: Stored; draw?: Stored }): FormsForm {
  const f = newForms()
  if (c.group) Object.assign(f.group, c.group)
  if (c.bargain) {
    const b = c.bargain as Record<string, number | null> & { reward?: BargainForm['reward'] }
    Object.assign(f.bargain, {
      start_price: yuanOf(b.start_price ?? 0), floor_price: yuanOf(b.floor_price ?? 0), cut_min: fenToYuan(b.cut_min ?? 1),
      cut_max: fenToYuan(b.cut_max ?? 1), helpers_needed: b.helpers_needed ?? null, help_limit: b.help_limit ?? 1, hours: b.hours ?? 24,
      reward: b.reward ?? 'campaign',
    })
  }
  if (c.red_packet) {
    const r = c.red_packet as Partial<Omit<RedPacketForm, 'yuan'>>
    // A voucher's values are fen: into the yuan fields; the points fields keep their defaults.
    if (r.claim_as === 'voucher') {
      const { initial_value, cap, min_increment, ...rest } = r
      Object.assign(f.red_packet, rest, { yuan: packetYuan({ initial_value, cap, min_increment }) })
    } else Object.assign(f.red_packet, r)
  }
  if (c.draw) {
    const d = c.draw as Omit<DrawForm, 'prizes'> & { prizes: (Omit<PrizeForm, 'label'> & { label?: string | null })[] }
    Object.assign(f.draw, { ...d, task_campaign_ids: [...(d.task_campaign_ids ?? [])], prizes: d.prizes.map((p) => ({ ...newPrize(p.kind), ...p, label: p.label ?? '' })) })
  }
  return f
}
