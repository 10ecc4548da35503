import { describe, expect, it } from 'vitest'
import { passwordFormProblem } from './password'

describe('the change-password form', () => {
  it('needs the old password and a new one typed twice the same', () => {
    expect(passwordFormProblem({ old: '', next: 'a-long-new-one', confirm: 'a-long-new-one' })).toBe('password.err.old')
    expect(passwordFormProblem({ old: 'x', next: '', confirm: '' })).toBe('password.err.new')
    expect(passwordFormProblem({ old: 'x', next: 'a-long-new-one', confirm: 'a-long-new-onE' })).toBe('password.err.mismatch')
  })
  it('refuses the same password again and accepts a real change', () => {
    expect(passwordFormProblem({ old: 'same-pass-1', next: 'same-pass-1', confirm: 'same-pass-1' })).toBe('password.err.same')
    expect(passwordFormProblem({ old: 'one-time-XYZ', next: 'a-long-new-one', confirm: 'a-long-new-one' })).toBe('')
  })
})
