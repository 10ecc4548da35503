import { describe, expect, it } from 'vitest'
import { can, menuFor, pageAccess } from './roles'

describe('menus by role', () => {
  it('a reviewer sees the review queue, not the builder', () => {
    const menu = menuFor('reviewer')
    expect(menu).toContain('review')
    expect(menu).not.toContain('builder')
    expect(menu).not.toContain('audit')
  })
  it('an operator builds and does not review', () => {
    const menu = menuFor('operator')
    expect(menu).toContain('builder')
    expect(menu).not.toContain('review')
    expect(menu).not.toContain('integrations')
    expect(menu).toContain('customers')
    expect(menu).not.toContain('accounts')
  })
  it('customer service is for operators and superadmins; export, erase and accounts for superadmins', () => {
    expect(menuFor('reviewer')).not.toContain('customers')
    expect(menuFor('approver')).not.toContain('customers')
    expect(can('operator', 'customers.rights')).toBe(false)
    expect(can('superadmin', 'customers.rights')).toBe(true)
    expect(can('operator', 'accounts')).toBe(false)
  })
  it('webhooks are for superadmins, alerts for every admin', () => {
    expect(menuFor('superadmin')).toContain('webhooks')
    expect(menuFor('operator')).not.toContain('webhooks')
    expect(menuFor('reviewer')).toContain('alerts')
    expect(menuFor(null)).toContain('alerts')
  })
  it('an approver decides top-ups and reads the audit log', () => {
    expect(can('approver', 'budget.decide')).toBe(true)
    expect(menuFor('approver')).toContain('audit')
    expect(can('approver', 'build')).toBe(false)
  })
  it('a superadmin sees everything; nobody unknown sees more than the common pages', () => {
    expect(menuFor('superadmin')).toHaveLength(19)
    expect(menuFor(null)).not.toContain('builder')
    expect(can('intruder', 'build')).toBe(false)
  })
})

import { decidesLevel, isOwn } from './roles'

describe('review levels', () => {
  it('follows the server: with two levels a reviewer decides the first, an approver the second', () => {
    expect(decidesLevel('reviewer', 1, 1)).toBe(true)
    expect(decidesLevel('reviewer', 1, 2)).toBe(true)
    expect(decidesLevel('reviewer', 2, 2)).toBe(false)
    expect(decidesLevel('approver', 2, 2)).toBe(true)
    expect(decidesLevel('approver', 1, 2)).toBe(false)
    expect(decidesLevel('operator', 1, 1)).toBe(false)
  })
  it('knows one\'s own campaign', () => {
    expect(isOwn(3, { created_by: 3, submitted_by: null })).toBe(true)
    expect(isOwn(3, { created_by: 1, submitted_by: 3 })).toBe(true)
    expect(isOwn(3, { created_by: 1, submitted_by: 2 })).toBe(false)
  })
})

describe('the routed page while /me is in flight', () => {
  it('a page that needs nothing shows at once, even before anyone is known', () => {
    expect(pageAccess(undefined, false, undefined)).toBe('page')
    expect(pageAccess('reviewer', false, undefined)).toBe('page')
  })
  it('a remembered role that has what the page needs shows it before /me answers', () => {
    expect(pageAccess('operator', false, 'build')).toBe('page')
    expect(pageAccess('operator', true, 'build')).toBe('page')
  })
  it('a role without it: nothing until the server confirms it, then "not allowed"', () => {
    expect(pageAccess('reviewer', false, 'build')).toBe('wait')
    expect(pageAccess(undefined, false, 'audit')).toBe('wait')
    expect(pageAccess('reviewer', true, 'build')).toBe('forbidden')
  })
})
