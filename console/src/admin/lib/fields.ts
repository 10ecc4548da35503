// Where a refused save's complaints go: the API names fields by their path in the body
// (pydantic: "coupons.0.validity.fixed.valid_until"; the cross-field checks:
// "coupons[0].grab_starts_at" in details.field). Both are brought to one dotted form and
// pinned on the closest field the form shows; the rest is shown above the form.
import { ApiError } from '@/api/client'

/** "coupons[0].validity.fixed.valid_until" → "coupons.0.validity.valid_until". */
export function normalizePath(path: string): string {
  return path
    .replace(/^body\./, '')
    .replace(/\[(\d+)\]/g, '.$1')
    .replace(/\.validity\.(fixed|relative)\./, '.validity.')
    .replace(/\.validity\.(fixed|relative)$/, '.validity')
}

export interface Placed {
  /** form field path → message */
  fields: Record<string, string>
  /** messages that belong to no shown field */
  general: string[]
}

/**
 * Spreads an error over the form's fields: a path the form knows takes the message, else
 * its closest known parent does ("content.zh-CN.title" → "content.zh-CN"), else it is general.
 */
export function placeErrors(error: unknown, known: ReadonlySet<string>): Placed {
  const placed: Placed = { fields: {}, general: [] }
  if (!(error instanceof ApiError)) return placed
  const items: { field: string; message: string }[] = error.fieldErrors.map((e) => ({
    field: String(e.field),
    message: e.message,
  }))
  const single = error.details.field
  if (typeof single === 'string') {
    // A cross-field check: its message starts with "<field>: ".
    const message = error.message.startsWith(`${single}: `) ? error.message.slice(single.length + 2) : error.message
    items.push({ field: single, message })
  }
  if (!items.length) {
    placed.general.push(error.message)
    return placed
  }
  for (const item of items) {
    let path = normalizePath(item.field)
    while (path && !known.has(path)) path = path.includes('.') ? path.slice(0, path.lastIndexOf('.')) : ''
    if (path) placed.fields[path] ??= item.message
    else placed.general.push(item.field.startsWith('(') ? item.message : `${item.field}: ${item.message}`)
  }
  return placed
}
