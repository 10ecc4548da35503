import { describe, expect, it } from 'vitest'
import { locale } from '@/lib/i18n'
import '../messages'
import { fieldLabel, shownValue } from './diff'

describe('approval diff values', () => {
  it('shows money in yuan and lists as text', () => {
    locale.value = 'en'
    expect(shownValue('budget_limit', 100_000)).toContain('1,000')
    expect(shownValue('tags', ['coffee', 'bakery'])).toBe('coffee, bakery')
    expect(shownValue('audience_rule', null)).toBe('—')
    expect(shownValue('coupons', [{ id: 1 }])).toBe('[{"id":1}]')
    expect(shownValue('per_user_limit', 3)).toBe('3')
  })
  it('labels known fields and falls back to the field name', () => {
    locale.value = 'en'
    expect(fieldLabel('starts_at')).not.toBe('starts_at')
    expect(fieldLabel('something_new')).toBe('something_new')
  })
})
