// The flash-sale monitor's refusals (GET /campaigns/{id}/monitor): reasons in a fixed
// order, largest first among equals, each with its label and count.
import { has, t } from '@/lib/i18n'

const ORDER = ['sold_out', 'budget', 'limit', 'rate_limited', 'not_eligible', 'not_started', 'not_active', 'ended']

export interface Refusal {
  reason: string
  label: string
  count: number
}

export function refusalList(refusals: Record<string, number> | undefined): Refusal[] {
  const rank = (r: string) => (ORDER.includes(r) ? ORDER.indexOf(r) : ORDER.length)
  return Object.entries(refusals ?? {})
    .filter(([, count]) => count > 0)
    .sort(([a, x], [b, y]) => rank(a) - rank(b) || y - x || a.localeCompare(b))
    .map(([reason, count]) => ({ reason, label: has(`refusal.${reason}`) ? t(`refusal.${reason}`) : reason, count }))
}

export const refusalTotal = (refusals: Record<string, number> | undefined): number =>
  Object.values(refusals ?? {}).reduce((sum, n) => sum + n, 0)
