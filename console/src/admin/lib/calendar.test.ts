import { describe, expect, it } from 'vitest'
import { clashDays, clashes, monthGrid, pairKey, shiftMonth, weekStart, windowOf } from './calendar'

describe('calendar', () => {
  it('moves between months across years', () => {
    expect(shiftMonth('2026-12', 1)).toBe('2027-01')
    expect(shiftMonth('2026-01', -1)).toBe('2025-12')
  })
  it('lays a month out Monday first', () => {
    const grid = monthGrid('2026-12') // 1 December 2026 is a Tuesday
    expect(grid[0]).toEqual([null, '2026-12-01', '2026-12-02', '2026-12-03', '2026-12-04', '2026-12-05', '2026-12-06'])
    expect(grid.flat().filter(Boolean)).toHaveLength(31)
    expect(grid.every((row) => row.length === 7)).toBe(true)
  })
  it('finds the week', () => {
    expect(weekStart('2026-12-03')).toBe('2026-11-30')
    expect(weekStart('2026-11-30')).toBe('2026-11-30')
  })
  it('flags exclusive campaigns running the same day, each pair once', () => {
    const pairs = new Set([pairKey(3, 1), pairKey(2, 5)])
    expect(clashes([1, 2, 3], pairs)).toEqual([[1, 3]])
    expect(clashes([5, 2, 2, 1], pairs)).toEqual([[2, 5]])
    expect(clashes([1, 2], pairs)).toEqual([])
  })
  it('asks for the month or the week, ends included', () => {
    expect(windowOf('month', '2028-02', '2028-02-07')).toEqual(['2028-02-01', '2028-02-29'])
    expect(windowOf('month', '2026-12', '2026-11-30')).toEqual(['2026-12-01', '2026-12-31'])
    expect(windowOf('week', '2026-12', '2026-12-28')).toEqual(['2026-12-28', '2027-01-03'])
  })
  it('spreads each clash over the days it spans', () => {
    const days = clashDays([
      { low: { id: 1 }, high: { id: 2 }, date_from: '2026-12-31', date_to: '2027-01-01' },
      { low: { id: 1 }, high: { id: 5 }, date_from: '2027-01-01', date_to: '2027-01-01' },
    ])
    expect([...days.keys()]).toEqual(['2026-12-31', '2027-01-01'])
    expect(days.get('2027-01-01')).toEqual([[1, 2], [1, 5]])
    expect(days.get('2027-01-02')).toBeUndefined()
  })
})
