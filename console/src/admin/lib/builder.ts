// The builder's form model and its conversion to the API's CampaignIn: money typed in yuan
// is sent in fen, times typed in the operator's zone are sent in UTC, empty optional fields
// are left out. What cannot be converted (a malformed amount or time) is a field error under
// the same path the server would use, so both land on the same form field.
import { fenToYuan, yuanToFen } from '@/lib/money'
import { formatDateTime, zonedToUtcIso } from '@/lib/time'
import type { Schemas } from '@/api/client'
import { fromJson, newGroup, toJson, type GroupNode } from './rule'
import { BLOCK_OF, formBlock, formsFromStored, newForms, type FormsForm, type FormType, type Say } from './forms'

export const CONTENT_FIELDS = ['title', 'summary', 'benefits', 'how_to_join', 'terms'] as const
export type ContentForm = Record<(typeof CONTENT_FIELDS)[number], string>

export interface CouponForm {
  id: number | null
  kind: 'fixed' | 'percent' | 'threshold' | 'free_item'
  title: Record<string, string>
  face_value: string
  percent_off: number | null
  min_spend: string
  item_name: string
  total_stock: number | null
  per_user_limit: number
  grab_starts_at: string
  validity_kind: 'fixed' | 'relative'
  valid_from: string
  valid_until: string
  days: number | null
  points_price: number | null
}

export interface BuilderForm {
  type: 'offer' | 'flash_sale' | 'challenge' | 'event' | 'referral' | FormType
  theme_id: number | null
  languages: string[]
  default_language: string
  content: Record<string, ContentForm>
  tags: string[]
  categories: string[]
  banner_media_id: number | null
  banner_url: string
  poster_media_id: number | null
  poster_url: string
  visible_from: string
  starts_at: string
  ends_at: string
  redeem_until: string
  channels: string[]
  store_ids: number[]
  visibility: 'public' | 'targeted' | 'hidden'
  rule: GroupNode
  participant_cap: number | null
  per_user_limit: number
  goal_metric: 'visits' | 'spend' | 'purchases' | 'checkin_streak' | 'referrals'
  goal_target: string
  goal_window_days: number | null
  reward_points: number
  reward_badge: string
  refund_policy: 'claw_back' | 'keep'
  budget_limit: string
  coupons: CouponForm[]
  /** the social forms' blocks (lib/forms.ts); only the one of `type` is sent */
  forms: FormsForm
}

export const emptyContent = (): ContentForm => ({ title: '', summary: '', benefits: '', how_to_join: '', terms: '' })

export function newCoupon(languages: string[]): CouponForm {
  return {
    id: null, kind: 'fixed', title: Object.fromEntries(languages.map((l) => [l, ''])), face_value: '', percent_off: null,
    min_spend: '', item_name: '', total_stock: 100, per_user_limit: 1, grab_starts_at: '', validity_kind: 'relative',
    valid_from: '', valid_until: '', days: 30, points_price: null,
  }
}

export function newForm(): BuilderForm {
  return {
    type: 'offer', theme_id: null, languages: ['zh-CN'], default_language: 'zh-CN', content: { 'zh-CN': emptyContent() },
    tags: [], categories: [], banner_media_id: null, banner_url: '', poster_media_id: null, poster_url: '',
    visible_from: '', starts_at: '', ends_at: '', redeem_until: '', channels: ['miniprogram'], store_ids: [],
    visibility: 'public', rule: newGroup('all'), participant_cap: null, per_user_limit: 1, goal_metric: 'visits',
    goal_target: '', goal_window_days: null, reward_points: 0, reward_badge: '', refund_policy: 'claw_back',
    budget_limit: '', coupons: [], forms: newForms(),
  }
}

export interface Converted {
  body: Record<string, unknown>
  /** path → message for what could not be converted */
  errors: Record<string, string>
}

export interface Messages {
  badMoney: string
  badTime: string
  /** the social forms' checks (lib/forms.ts); their i18n keys when left out */
  say?: Say
}

/** The form as the API's CampaignIn (create) body, with the conversion's own field errors. */
export function toCampaignIn(form: BuilderForm, zone: string, messages: Messages): Converted {
  const errors: Record<string, string> = {}
  const time = (path: string, text: string, required: boolean): string | null | undefined => {
    if (!text.trim()) {
      if (required) errors[path] = messages.badTime
      return null
    }
    const utc = zonedToUtcIso(text, zone)
    if (utc === null) errors[path] = messages.badTime
    return utc
  }
  const money = (path: string, text: string, required: boolean): number | null => {
    if (!text.trim()) {
      if (required) errors[path] = messages.badMoney
      return null
    }
    const fen = yuanToFen(text)
    if (fen === null || fen < 0) {
      errors[path] = messages.badMoney
      return null
    }
    return fen
  }

  const content: Record<string, Record<string, string>> = {}
  for (const lang of form.languages) content[lang] = { ...(form.content[lang] ?? emptyContent()) }
  const body: Record<string, unknown> = {
    type: form.type,
    content,
    default_language: form.default_language,
    tags: form.tags,
    categories: form.categories,
    channels: form.channels,
    store_ids: form.store_ids.length ? form.store_ids : null,
    visibility: form.visibility,
    audience_rule: toJson(form.rule),
    participant_cap: form.participant_cap || null,
    per_user_limit: form.per_user_limit,
    reward_points: form.reward_points,
    reward_badge: form.reward_badge.trim() || null,
    refund_policy: form.refund_policy,
    starts_at: time('starts_at', form.starts_at, true),
    ends_at: time('ends_at', form.ends_at, true),
    visible_from: time('visible_from', form.visible_from, false),
    redeem_until: time('redeem_until', form.redeem_until, false),
    budget_limit: money('budget_limit', form.budget_limit, false),
    theme_id: form.theme_id,
    banner_media_id: form.banner_media_id,
    poster_media_id: form.poster_media_id,
  }
  if (form.type === 'challenge') {
    const target = form.goal_metric === 'spend' ? money('goal.target', form.goal_target, true) : Number(form.goal_target) || null
    if (target === null) errors['goal.target'] ??= messages.badMoney
    body.goal = { metric: form.goal_metric, target, window_days: form.goal_window_days || null }
  }
  body.coupons = form.coupons.map((c, i) => {
    const p = `coupons.${i}`
    const title: Record<string, string> = {}
    for (const [lang, text] of Object.entries(c.title)) if (form.languages.includes(lang) && text.trim()) title[lang] = text.trim()
    const coupon: Record<string, unknown> = {
      kind: c.kind,
      title,
      face_value: money(`${p}.face_value`, c.face_value, true),
      min_spend: money(`${p}.min_spend`, c.min_spend, false) ?? 0,
      total_stock: c.total_stock,
      per_user_limit: c.per_user_limit,
      grab_starts_at: time(`${p}.grab_starts_at`, c.grab_starts_at, false),
      validity:
        c.validity_kind === 'relative'
          ? { kind: 'relative', days: c.days }
          : {
              kind: 'fixed',
              valid_from: time(`${p}.validity.valid_from`, c.valid_from, true),
              valid_until: time(`${p}.validity.valid_until`, c.valid_until, true),
            },
    }
    if (c.id !== null) coupon.id = c.id
    if (c.kind === 'percent') coupon.percent_off = c.percent_off
    if (c.kind === 'free_item') coupon.item_name = c.item_name
    if (c.points_price) coupon.points_price = c.points_price
    return coupon
  })
  const formType = form.type as FormType
  if (formType in BLOCK_OF) {
    const say: Say = messages.say ?? ((key) => key)
    const made = formBlock(formType, form.forms, form.coupons.length, say)
    body[BLOCK_OF[formType]] = made.block
    for (const [path, message] of Object.entries(made.errors)) errors[path] ??= message
  }
  return { body, errors }
}

/** A stored campaign as the form (to edit it): fen back to yuan, UTC back to the zone. */
export function fromCampaignOut(c: Schemas['CampaignOut'], zone: string): BuilderForm {
  const local = (iso: string | null | undefined) => (iso ? formatDateTime(iso, zone).replace(' ', 'T') : '')
  const form = newForm()
  const languages = Object.keys(c.content)
  Object.assign(form, {
    type: c.type, theme_id: c.theme_id, languages, default_language: c.default_language,
    content: Object.fromEntries(languages.map((l) => [l, { ...emptyContent(), ...c.content[l] }])),
    tags: c.tags, categories: c.categories, banner_media_id: c.banner_media_id, poster_media_id: c.poster_media_id,
    visible_from: local(c.visible_from), starts_at: local(c.starts_at), ends_at: local(c.ends_at),
    redeem_until: local(c.redeem_until), channels: c.channels, store_ids: c.store_ids ?? [], visibility: c.visibility,
    rule: c.audience_rule ? fromJson(c.audience_rule) : newGroup('all'), participant_cap: c.participant_cap,
    per_user_limit: c.per_user_limit, reward_points: c.reward_points, reward_badge: c.reward_badge ?? '',
    refund_policy: c.refund_policy, budget_limit: c.budget_limit === null ? '' : fenToYuan(c.budget_limit),
  })
  if (c.goal) {
    form.goal_metric = c.goal.metric as BuilderForm['goal_metric']
    form.goal_target = c.goal.metric === 'spend' ? fenToYuan(c.goal.target) : String(c.goal.target)
    form.goal_window_days = c.goal.window_days ?? null
  }
  form.forms = formsFromStored(c)
  form.coupons = c.coupons.map((k) => {
    const v = k.validity as { kind: string; days?: number; valid_from?: string; valid_until?: string }
    return {
      id: k.id, kind: k.kind as CouponForm['kind'], title: { ...k.title }, face_value: fenToYuan(k.face_value),
      percent_off: k.percent_off ?? null, min_spend: k.min_spend ? fenToYuan(k.min_spend) : '', item_name: k.item_name ?? '',
      total_stock: k.total_stock, per_user_limit: k.per_user_limit, grab_starts_at: local(k.grab_starts_at),
      validity_kind: v.kind === 'fixed' ? 'fixed' : 'relative', valid_from: local(v.valid_from), valid_until: local(v.valid_until),
      days: v.days ?? null, points_price: k.points_price,
    }
  })
  return form
}
