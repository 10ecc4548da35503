// Display helpers shared by the pages: API times in the operator's zone, fen as yuan,
// translated type/status names (unknown ones shown as the API spells them).
import { formatDateTime } from '@/lib/time'
import { formatYuan } from '@/lib/money'
import { has, locale, t } from '@/lib/i18n'

export const when = (iso: string | null | undefined): string => (iso ? formatDateTime(iso) : '—')
export const yuan = (fen: number | null | undefined): string => (fen == null ? '—' : formatYuan(fen, locale.value))
export const typeName = (type: string): string => (has(`type.${type}`) ? t(`type.${type}`) : type)
export const statusName = (status: string): string => (has(`status.${status}`) ? t(`status.${status}`) : status)

/** Element Plus tag colour per campaign status (the calendar uses the same). */
export function statusColour(status: string): 'success' | 'warning' | 'info' | 'danger' | 'primary' {
  switch (status) {
    case 'active':
      return 'success'
    case 'in_review':
    case 'returned':
    case 'paused':
      return 'warning'
    case 'scheduled':
    case 'approved':
      return 'primary'
    case 'rejected':
      return 'danger'
    default:
      return 'info'
  }
}

/** A title from a per-language map: the current language, else zh-CN, else any. */
export function titleOf(map: Record<string, string> | null | undefined): string {
  if (!map) return ''
  return map[locale.value] ?? map['zh-CN'] ?? Object.values(map)[0] ?? ''
}

/** Query parameters without the empty ones (an empty filter is no filter). */
export function compact<T extends Record<string, unknown>>(query: T): Partial<T> {
  const out: Partial<T> = {}
  for (const [k, v] of Object.entries(query)) if (v !== '' && v !== null && v !== undefined) (out as Record<string, unknown>)[k] = v
  return out
}
