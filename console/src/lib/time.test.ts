import { describe, expect, it } from 'vitest'
import { currentZone, DEFAULT_ZONE, formatDate, formatDateTime, formatTime, offsetMinutes, shiftDate, todayIn, utcDay, zonedToUtcIso } from './time'

describe('showing API times', () => {
  it('shows UTC in Shanghai time by default', () => {
    expect(DEFAULT_ZONE).toBe('Asia/Shanghai')
    expect(formatDateTime('2026-12-03T17:05:09Z', DEFAULT_ZONE)).toBe('2026-12-04 01:05')
    expect(formatDateTime('2026-12-03T17:05:09+00:00', DEFAULT_ZONE, true)).toBe('2026-12-04 01:05:09')
    expect(formatTime('2026-12-03T02:30:00Z', DEFAULT_ZONE)).toBe('10:30')
    expect(formatDate('2026-12-03T16:00:00Z', DEFAULT_ZONE)).toBe('2026-12-04')
  })
  it('honours the offset the API sends and another zone', () => {
    expect(formatDateTime('2026-12-04T01:05:00+08:00', 'UTC')).toBe('2026-12-03 17:05')
    expect(formatDateTime('2026-07-01T12:00:00Z', 'Europe/Berlin')).toBe('2026-07-01 14:00')
  })
  it('knows the offset', () => {
    expect(offsetMinutes(new Date('2026-12-03T00:00:00Z'), 'Asia/Shanghai')).toBe(480)
    expect(offsetMinutes(new Date('2026-01-15T00:00:00Z'), 'America/New_York')).toBe(-300)
  })
  it('falls back to Shanghai without a saved zone', () => {
    expect(currentZone({ getItem: () => null })).toBe('Asia/Shanghai')
    expect(currentZone({ getItem: () => 'Not/AZone' })).toBe('Asia/Shanghai')
    expect(currentZone({ getItem: () => 'UTC' })).toBe('UTC')
  })
})

describe('sending times typed in the zone', () => {
  it('converts wall-clock time to UTC', () => {
    expect(zonedToUtcIso('2026-12-04 01:05', 'Asia/Shanghai')).toBe('2026-12-03T17:05:00Z')
    expect(zonedToUtcIso('2026-12-04T08:00:30', 'Asia/Shanghai')).toBe('2026-12-04T00:00:30Z')
    expect(zonedToUtcIso('2026-07-01 14:00', 'Europe/Berlin')).toBe('2026-07-01T12:00:00Z')
  })
  it('refuses what is not a time', () => {
    expect(zonedToUtcIso('tomorrow', 'Asia/Shanghai')).toBeNull()
    expect(zonedToUtcIso('2026-02-30 10:00', 'Asia/Shanghai')).toBeNull()
    // Does not exist in Berlin (clocks jump from 02:00 to 03:00).
    expect(zonedToUtcIso('2026-03-29 02:30', 'Europe/Berlin')).toBeNull()
  })
  it('round-trips', () => {
    const iso = '2026-12-03T17:05:00Z'
    expect(zonedToUtcIso(formatDateTime(iso, 'Asia/Shanghai'), 'Asia/Shanghai')).toBe(iso)
  })
  it('names days', () => {
    const late = new Date('2026-12-03T17:00:00Z')
    expect(todayIn('Asia/Shanghai', late)).toBe('2026-12-04')
    expect(utcDay(late)).toBe('2026-12-03')
    expect(shiftDate('2026-12-31', 1)).toBe('2027-01-01')
    expect(shiftDate('2028-03-01', -1)).toBe('2028-02-29')
  })
})
