import { describe, expect, it } from 'vitest'
import { ApiError } from '@/api/client'
import { normalizePath, placeErrors } from './fields'

describe('field errors', () => {
  it('brings both path styles to one', () => {
    expect(normalizePath('coupons[0].validity.valid_until')).toBe('coupons.0.validity.valid_until')
    expect(normalizePath('coupons.1.validity.fixed.valid_from')).toBe('coupons.1.validity.valid_from')
    expect(normalizePath('content.zh-CN.title')).toBe('content.zh-CN.title')
  })
  it('pins each on the closest known field, the rest is general', () => {
    const error = new ApiError(422, 'validation_failed', 'body content.en.title: too short', {
      errors: [
        { field: 'content.en.title', message: 'String should have at least 1 character' },
        { field: 'coupons.0.face_value', message: 'Input should be greater than or equal to 1' },
        { field: '(body)', message: 'Value error, a flash sale needs at least one coupon' },
      ],
    })
    const known = new Set(['content.en', 'coupons.0.face_value'])
    expect(placeErrors(error, known)).toEqual({
      fields: { 'content.en': 'String should have at least 1 character', 'coupons.0.face_value': 'Input should be greater than or equal to 1' },
      general: ['Value error, a flash sale needs at least one coupon'],
    })
  })
  it('takes the cross-field checks too', () => {
    const error = new ApiError(422, 'invalid_schedule', 'ends_at: must be after starts_at', { field: 'ends_at' })
    expect(placeErrors(error, new Set(['ends_at'])).fields).toEqual({ ends_at: 'must be after starts_at' })
    const budget = new ApiError(422, 'budget_too_small', 'budget_limit 5 is smaller than one coupon (100)', {
      field: 'budget_limit',
    })
    expect(placeErrors(budget, new Set(['budget_limit'])).fields.budget_limit).toContain('smaller')
  })
})
