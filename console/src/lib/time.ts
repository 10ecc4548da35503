// Times travel in UTC (ISO 8601 with an offset) and are shown in the operator's zone:
// Asia/Shanghai (UTC+8) unless the operator picked another. Conversions go through
// Intl with an explicit zone, so the browser's own zone never leaks into what is shown
// or sent.

export const DEFAULT_ZONE = 'Asia/Shanghai'
const ZONE_KEY = 'console.zone'

/** The operator's zone: the saved choice, else Asia/Shanghai. */
export function currentZone(storage: Pick<Storage, 'getItem'> | null = safeStorage()): string {
  const saved = storage?.getItem(ZONE_KEY)
  return saved && isZone(saved) ? saved : DEFAULT_ZONE
}

export function saveZone(zone: string, storage: Pick<Storage, 'setItem'> | null = safeStorage()): void {
  if (!isZone(zone)) throw new RangeError(`unknown time zone ${zone}`)
  storage?.setItem(ZONE_KEY, zone)
}

export function isZone(zone: string): boolean {
  try {
    formatIn(zone)
    return true
  } catch {
    return false
  }
}

// One formatter per zone, made once: making an Intl.DateTimeFormat costs far more than
// using one, and a list page formats a few times per row (a table's first render spent
// 20-30 ms of its 0.5 s making them in Chromium).
const formats = new Map<string, Intl.DateTimeFormat>()

function formatIn(zone: string): Intl.DateTimeFormat {
  let format = formats.get(zone)
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone: zone, hourCycle: 'h23',
      year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
    })
    formats.set(zone, format)
  }
  return format
}

function safeStorage(): Storage | null {
  return typeof window === 'undefined' ? null : window.localStorage
}

interface Parts {
  year: number
  month: number
  day: number
  hour: number
  minute: number
  second: number
}

function partsIn(date: Date, zone: string): Parts {
  const out: Record<string, number> = {}
  for (const part of formatIn(zone).formatToParts(date)) {
    if (part.type !== 'literal') out[part.type] = Number(part.value)
  }
  return out as unknown as Parts
}

const pad = (n: number, width = 2) => String(n).padStart(width, '0')

/** The zone's offset from UTC at that instant, in minutes (Shanghai: +480). */
export function offsetMinutes(date: Date, zone: string): number {
  const p = partsIn(date, zone)
  const asUtc = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second)
  return Math.round((asUtc - Math.floor(date.getTime() / 1000) * 1000) / 60000)
}

/** An API time (ISO 8601 with offset) → "2026-12-03 18:05" in the zone. */
export function formatDateTime(iso: string, zone: string = currentZone(), withSeconds = false): string {
  const p = partsIn(new Date(iso), zone)
  const time = `${pad(p.hour)}:${pad(p.minute)}${withSeconds ? `:${pad(p.second)}` : ''}`
  return `${p.year}-${pad(p.month)}-${pad(p.day)} ${time}`
}

/** An API time → "18:05" in the zone (the till's list). */
export function formatTime(iso: string, zone: string = currentZone()): string {
  const p = partsIn(new Date(iso), zone)
  return `${pad(p.hour)}:${pad(p.minute)}`
}

/** An API time → "2026-12-03" in the zone. */
export function formatDate(iso: string, zone: string = currentZone()): string {
  const p = partsIn(new Date(iso), zone)
  return `${p.year}-${pad(p.month)}-${pad(p.day)}`
}

/**
 * A wall-clock time typed in the zone ("2026-12-03T18:05" or "2026-12-03 18:05[:ss]")
 * → the UTC ISO string the API takes ("2026-12-03T10:05:00Z"). Null when unparsable.
 * Around a DST change the first matching instant wins (Shanghai has none).
 */
export function zonedToUtcIso(local: string, zone: string = currentZone()): string | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?$/.exec(local.trim())
  if (!m) return null
  const [, y, mo, d, h, mi, s = '0'] = m
  const guess = Date.UTC(+y, +mo - 1, +d, +h, +mi, +s)
  // Two passes: the offset at the guess, then at the corrected instant.
  let utc = guess - offsetMinutes(new Date(guess), zone) * 60000
  utc = guess - offsetMinutes(new Date(utc), zone) * 60000
  const back = partsIn(new Date(utc), zone)
  if (back.year !== +y || back.month !== +mo || back.day !== +d || back.hour !== +h || back.minute !== +mi) return null
  return new Date(utc).toISOString().replace('.000Z', 'Z')
}

/** Today's date ("YYYY-MM-DD") in the zone. */
export function todayIn(zone: string = currentZone(), now: Date = new Date()): string {
  return formatDate(now.toISOString(), zone)
}

/** "YYYY-MM-DD" shifted by whole days (calendar arithmetic, no zone involved). */
export function shiftDate(day: string, by: number): string {
  const d = new Date(`${day}T00:00:00Z`)
  d.setUTCDate(d.getUTCDate() + by)
  return d.toISOString().slice(0, 10)
}

/** The UTC day ("YYYY-MM-DD") an instant falls on. */
export function utcDay(now: Date = new Date()): string {
  return now.toISOString().slice(0, 10)
}
