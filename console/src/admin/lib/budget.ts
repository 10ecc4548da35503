// The budget page's burn-down: what was left at the end of each day, and when the budget
// runs out at the recent pace (the mean daily spend over the last `window` days with spend data).

export interface BurnDay {
  date: string
  /** fen spent that day (face value issued) */
  spent: number
}

export interface BurnDown {
  /** fen left at the end of each day, starting from the cap minus what was spent before the first day */
  left: { date: string; left: number }[]
  /** fen per day at the recent pace */
  pace: number
  /** the UTC day the budget is projected to run out; null without a cap, without spend, or when already out */
  exhaustion: string | null
}

export function burnDown(days: BurnDay[], cap: number | null, spentTotal: number, window = 7): BurnDown {
  const inRange = days.reduce((sum, d) => sum + d.spent, 0)
  let left = cap === null ? 0 : cap - (spentTotal - inRange)
  const series = days.map((d) => {
    left -= d.spent
    return { date: d.date, left }
  })
  const recent = days.slice(-window)
  const pace = recent.length ? Math.round(recent.reduce((s, d) => s + d.spent, 0) / recent.length) : 0
  let exhaustion: string | null = null
  const remaining = cap === null ? 0 : cap - spentTotal
  if (cap !== null && pace > 0 && remaining > 0 && days.length) {
    const last = new Date(`${days[days.length - 1].date}T00:00:00Z`)
    last.setUTCDate(last.getUTCDate() + Math.ceil(remaining / pace))
    exhaustion = last.toISOString().slice(0, 10)
  }
  return { left: cap === null ? [] : series, pace, exhaustion }
}
