// Money is integer fen on the wire (the API never sends floats for money) and yuan on
// screen. Parsing works on the decimal text, never through floating point: "19.9" is
// 1990 fen exactly, and "0.1" + "0.2" cannot become 0.30000000000000004.

/** Fen → "12.50" (two decimals, no currency sign; negative kept). */
export function fenToYuan(fen: number): string {
  if (!Number.isInteger(fen)) throw new RangeError(`fen must be an integer, got ${fen}`)
  const sign = fen < 0 ? '-' : ''
  const abs = Math.abs(fen)
  const yuan = Math.floor(abs / 100)
  const cents = String(abs % 100).padStart(2, '0')
  return `${sign}${yuan}.${cents}`
}

/** Fen → "¥12.50" with thousands separators (for display only). */
export function formatYuan(fen: number, locale: string = 'zh-CN'): string {
  const text = fenToYuan(fen)
  const negative = text.startsWith('-')
  const [whole, cents] = (negative ? text.slice(1) : text).split('.')
  const grouped = Number(whole).toLocaleString(locale === 'en' ? 'en-US' : locale)
  return `${negative ? '-' : ''}¥${grouped}.${cents}`
}

/**
 * "12.5", "12.50", "¥1,200", " 3 " → fen; null for anything that is not a yuan amount
 * with at most two decimals (the form shows a field error then).
 */
export function yuanToFen(text: string): number | null {
  const cleaned = text.trim().replace(/^[¥￥]/, '').replace(/,/g, '').trim()
  const match = /^(-)?(\d+)(?:\.(\d{0,2}))?$/.exec(cleaned)
  if (!match) return null
  const [, minus, whole, decimals = ''] = match
  const fen = Number(whole) * 100 + Number(decimals.padEnd(2, '0') || '0')
  if (!Number.isSafeInteger(fen)) return null
  return minus ? -fen : fen
}
