// Customer service's pure logic: the search form turned into the API's query, and the
// checks a form makes before it asks (the server checks again).

/** Membership tiers and lifecycle stages as the API names them (handlers/admin/customers.py). */
export const TIERS = ['standard', 'silver', 'gold', 'platinum'] as const
export const STAGES = ['new', 'unactivated', 'active', 'silent', 'churned'] as const

export type SearchBy = 'phone_suffix' | 'nickname' | 'id' | 'openid'

export interface SearchForm {
  by: SearchBy
  text: string
  tier: string
  city: string
  lifecycle_stage: string
}

export interface SearchQuery {
  id?: number
  openid?: string
  phone_suffix?: string
  nickname?: string
  tier?: (typeof TIERS)[number]
  city?: string
  lifecycle_stage?: (typeof STAGES)[number]
}

/** The list's query: the one search field that is filled and the filters set (blanks left out). */
export function searchQuery(form: SearchForm): SearchQuery {
  const out: SearchQuery = {}
  const text = form.text.trim()
  if (text) {
    if (form.by === 'id') {
      // Not a number: no customer has it; ask for id 0 rather than list everyone.
      out.id = /^\d+$/.test(text) ? Number(text) : 0
    } else if (form.by === 'phone_suffix') {
      // A whole number typed in: its last four digits are the index's key.
      out.phone_suffix = text.replace(/\D/g, '').slice(-4) || text
    } else {
      out[form.by] = text
    }
  }
  if ((TIERS as readonly string[]).includes(form.tier)) out.tier = form.tier as SearchQuery['tier']
  if (form.city.trim()) out.city = form.city.trim()
  if ((STAGES as readonly string[]).includes(form.lifecycle_stage)) {
    out.lifecycle_stage = form.lifecycle_stage as SearchQuery['lifecycle_stage']
  }
  return out
}

/** Why a points adjustment cannot be sent yet ('' when it can). */
export function pointsProblem(delta: number | null | undefined, reason: string, limit = 10_000_000): string {
  if (delta == null || !Number.isInteger(delta) || delta === 0) return 'cs.err.delta'
  if (Math.abs(delta) > limit) return 'cs.err.delta_limit'
  if (!reason.trim()) return 'cs.err.reason'
  return ''
}

/** Erasure asks the operator to type the customer's id: it is irreversible. */
export function erasureConfirmed(customerId: number, typed: string): boolean {
  return typed.trim() === String(customerId)
}

/** A voucher customer service may still void: issued and not used, expired or void. */
export function voidable(voucher: { status: string }): boolean {
  return voucher.status === 'available'
}
