// The approval diff (GET /campaigns/{id}/diff) as the review page shows it: each changed
// field's label and its old and new values in the operator's units (yuan, local times).
import { has, t } from '@/lib/i18n'
import { when, yuan } from './format'

/** Spec fields sent in fen. */
const MONEY = new Set(['budget_limit'])
/** Spec fields sent as UTC ISO times. */
const TIMES = new Set(['visible_from', 'starts_at', 'ends_at', 'redeem_until'])

export function fieldLabel(field: string): string {
  for (const key of [`b.${field}`, `f.${field}`, `diff.${field}`]) if (has(key)) return t(key)
  return field
}

export function shownValue(field: string, value: unknown): string {
  if (value === null || value === undefined) return '—'
  if (MONEY.has(field) && typeof value === 'number') return yuan(value)
  if (TIMES.has(field) && typeof value === 'string') return when(value)
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value.join(', ') || '—'
  if (typeof value === 'object') return JSON.stringify(value)
  return String(value)
}
