// The calendar's arithmetic: the weeks of a month grid, a week's days, and which campaigns
// running on a day are mutually exclusive with each other (the clash the calendar flags).

/** "2026-12" → the next or previous month. */
export function shiftMonth(month: string, by: number): string {
  const [y, m] = month.split('-').map(Number)
  const d = new Date(Date.UTC(y, m - 1 + by, 1))
  return d.toISOString().slice(0, 7)
}

/** "2026-12-03" shifted by days. */
export function shiftDay(day: string, by: number): string {
  const d = new Date(`${day}T00:00:00Z`)
  d.setUTCDate(d.getUTCDate() + by)
  return d.toISOString().slice(0, 10)
}

/** The Monday of the week holding the day. */
export function weekStart(day: string): string {
  const weekday = (new Date(`${day}T00:00:00Z`).getUTCDay() + 6) % 7 // Monday 0
  return shiftDay(day, -weekday)
}

/** The month grid: rows of 7 days (Monday first), null outside the month. */
export function monthGrid(month: string): (string | null)[][] {
  const first = `${month}-01`
  const days: (string | null)[] = Array((new Date(`${first}T00:00:00Z`).getUTCDay() + 6) % 7).fill(null)
  for (let d = first; d.startsWith(month); d = shiftDay(d, 1)) days.push(d)
  while (days.length % 7) days.push(null)
  const rows: (string | null)[][] = []
  for (let i = 0; i < days.length; i += 7) rows.push(days.slice(i, i + 7))
  return rows
}

/** "a-b" with the smaller id first: one key per unordered pair. */
export const pairKey = (a: number, b: number): string => (a < b ? `${a}-${b}` : `${b}-${a}`)

/** The exclusive pairs among the campaigns running on one day. */
export function clashes(running: readonly number[], exclusivePairs: ReadonlySet<string>): [number, number][] {
  const out: [number, number][] = []
  const ids = [...new Set(running)].sort((a, b) => a - b)
  for (let i = 0; i < ids.length; i++) {
    for (let j = i + 1; j < ids.length; j++) if (exclusivePairs.has(pairKey(ids[i], ids[j]))) out.push([ids[i], ids[j]])
  }
  return out
}

/** The first and last day (inclusive) the calendar asks the server for: the month, or the week. */
export function windowOf(mode: 'month' | 'week', month: string, week: string): [string, string] {
  if (mode === 'week') return [week, shiftDay(week, 6)]
  return [`${month}-01`, shiftDay(`${shiftMonth(month, 1)}-01`, -1)]
}

/** A clash as the calendar's overlaps route answers it: two campaigns and the days they share. */
export interface ClashSpan {
  low: { id: number; title?: string | null }
  high: { id: number; title?: string | null }
  date_from: string
  date_to: string
}

/** Day → the exclusive pairs running together that day, from the window's clashes. */
export function clashDays(items: readonly ClashSpan[]): Map<string, [number, number][]> {
  const out = new Map<string, [number, number][]>()
  for (const c of items) {
    for (let d = c.date_from; d <= c.date_to; d = shiftDay(d, 1)) {
      const list = out.get(d) ?? []
      list.push([c.low.id, c.high.id])
      out.set(d, list)
    }
  }
  return out
}
