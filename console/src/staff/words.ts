// What the till shows in words: a voucher's title and value, and why a code cannot be
// redeemed, in the current language with times in the operator's zone and money in yuan.
import { ApiError } from '@/api/client'
import { has, locale, t, type Locale } from '@/lib/i18n'
import { formatYuan } from '@/lib/money'
import { currentZone, formatDateTime } from '@/lib/time'

/** The title in the page's language, else Chinese, else any. */
export function titleOf(title: Record<string, string>, lang: Locale = locale.value): string {
  return title[lang] ?? title['zh-CN'] ?? title.zh ?? Object.values(title)[0] ?? ''
}

export interface Face {
  kind: string
  face_value: number
  percent_off?: number | null
  min_spend: number
  item_name?: string | null
}

/** "立减 ¥10.00", "满 ¥100.00 减 ¥20.00", "8.5 折，最多减 ¥30.00", "免费兑换：咖啡". */
export function faceText(face: Face, lang: Locale = locale.value): string {
  const value = formatYuan(face.face_value, lang)
  const min = formatYuan(face.min_spend, lang)
  switch (face.kind) {
    case 'threshold':
      return t('face.threshold', { value, min }, lang)
    case 'percent': {
      const off = face.percent_off ?? 0
      // Chinese says the price paid (8.5 折 is 15% off); English the part taken off.
      if (lang === 'zh-CN') return t('face.percent', { percent: String((100 - off) / 10), value }, lang)
      return t('face.percent_off', { percent: off, value }, lang)
    }
    case 'free_item':
      return t('face.free_item', { item: face.item_name ?? '' }, lang)
    default: {
      const text = t('face.fixed', { value }, lang)
      if (face.min_spend <= 0) return text
      const spend = t('face.min_spend', { min }, lang)
      return lang === 'zh-CN' ? `${text}（${spend}）` : `${text} (${spend})`
    }
  }
}

const TIMES = ['used_at', 'valid_until', 'redeem_until', 'valid_from']
const MONEY = ['min_spend', 'order_amount']

/**
 * A refusal or failure in plain words: the translation of its code with the details
 * formatted (times in the zone, fen in yuan), else the API's own message.
 */
export function explain(
  error: { code: string; message: string; details?: Record<string, unknown> } | unknown,
  lang: Locale = locale.value,
  zone: string = currentZone(),
): string {
  const shaped =
    error instanceof ApiError
      ? { code: error.code, message: error.message, details: error.details }
      : (error as { code?: unknown; message?: unknown; details?: Record<string, unknown> } | null)
  if (!shaped || typeof shaped.code !== 'string') return t('common.network', {}, lang)
  const message = typeof shaped.message === 'string' ? shaped.message : shaped.code
  if (!has(`error.${shaped.code}`, lang)) return message
  const params: Record<string, string | number> = { message }
  for (const [key, value] of Object.entries(shaped.details ?? {})) {
    if (TIMES.includes(key) && typeof value === 'string') params[key] = formatDateTime(value, zone)
    else if (MONEY.includes(key) && typeof value === 'number') params[key] = formatYuan(value, lang)
    else if (typeof value === 'string' || typeof value === 'number') params[key] = value
  }
  // A detail the server could not name (an unknown store) reads as a dash, not "{store_name}".
  return t(`error.${shaped.code}`, params, lang).replace(/\{\w+\}/g, '—')
}
