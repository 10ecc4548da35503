// What a page shows for a failed call: the API's message for a refusal, "not allowed" for
// a 403 (never a blank page), a plain network line when the request never got an answer.
import { ApiError } from '@/api/client'
import { has, t } from './i18n'

/** A line for the user; codes with a translation (key `error.<code>`) use it. */
export function describeError(error: unknown): string {
  if (error instanceof ApiError) {
    if (has(`error.${error.code}`)) return t(`error.${error.code}`, stringParams(error.details))
    if (error.forbidden) return t('common.forbidden', { message: error.message })
    return error.message
  }
  return t('common.network')
}

function stringParams(details: Record<string, unknown>): Record<string, string | number> {
  const out: Record<string, string | number> = {}
  for (const [key, value] of Object.entries(details)) {
    if (typeof value === 'string' || typeof value === 'number') out[key] = value
  }
  return out
}

/** Field errors of a 422 keyed by the API's dotted path ("order_amount", "rewards.0.coupon.value"). */
export function fieldErrorMap(error: unknown): Record<string, string> {
  if (!(error instanceof ApiError)) return {}
  const out: Record<string, string> = {}
  for (const item of error.fieldErrors) {
    out[String(item.field)] ??= item.message
  }
  return out
}
