import { describe, expect, it } from 'vitest'
import { burnDown } from './budget'

describe('burn-down', () => {
  it('counts down from the cap and projects the day it runs out', () => {
    const days = [
      { date: '2026-12-01', spent: 1000 },
      { date: '2026-12-02', spent: 3000 },
      { date: '2026-12-03', spent: 2000 },
    ]
    const r = burnDown(days, 20_000, 6000)
    expect(r.left.map((d) => d.left)).toEqual([19_000, 16_000, 14_000])
    expect(r.pace).toBe(2000)
    expect(r.exhaustion).toBe('2026-12-10') // 14,000 left at 2,000 a day: 7 more days
  })
  it('counts spend from before the range', () => {
    const r = burnDown([{ date: '2026-12-05', spent: 500 }], 10_000, 4500)
    expect(r.left).toEqual([{ date: '2026-12-05', left: 5500 }])
  })
  it('projects nothing without a cap, a pace, or anything left', () => {
    expect(burnDown([{ date: '2026-12-01', spent: 5 }], null, 5).exhaustion).toBeNull()
    expect(burnDown([{ date: '2026-12-01', spent: 0 }], 100, 0).exhaustion).toBeNull()
    expect(burnDown([{ date: '2026-12-01', spent: 100 }], 100, 100).exhaustion).toBeNull()
  })
})
