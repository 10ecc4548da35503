// Who may do what in the console, mirrored from the server's route rules (handlers/admin/*.py
// `access=`): the menu and the buttons follow it, and the server refuses anyway (a 403 is
// shown as a page saying so). Keep in step with the server when a route's access changes.

export const ROLES = ['operator', 'reviewer', 'approver', 'superadmin'] as const
export type Role = (typeof ROLES)[number]

export type Capability =
  | 'build' // create/edit/submit/publish/pause/end campaigns, media upload (BUILDERS)
  | 'review' // approve / reject / return (REVIEWERS)
  | 'segments.write' // save, replace, delete segments
  | 'themes.write'
  | 'automation.write'
  | 'budget.request' // ask for a top-up, add coupon stock
  | 'budget.decide' // approve / reject top-ups
  | 'audit' // read the audit log
  | 'integrations' // list / create integrations
  | 'stores.write'
  | 'customers' // find customers, adjust points, set tiers, void and re-issue (CUSTOMER_SERVICE)
  | 'customers.rights' // export or erase a customer's data (superadmin)
  | 'accounts' // admins and staff: edit, reset passwords (superadmin)
  | 'webhooks' // webhook endpoints, their deliveries (superadmin)

const CAPABILITIES: Record<Capability, readonly Role[]> = {
  build: ['operator', 'superadmin'],
  review: ['reviewer', 'approver', 'superadmin'],
  'segments.write': ['operator', 'superadmin'],
  'themes.write': ['operator', 'superadmin'],
  'automation.write': ['operator', 'superadmin'],
  'budget.request': ['operator', 'superadmin'],
  'budget.decide': ['approver', 'superadmin'],
  audit: ['approver', 'superadmin'],
  integrations: ['superadmin'],
  'stores.write': ['superadmin'],
  customers: ['operator', 'superadmin'],
  'customers.rights': ['superadmin'],
  accounts: ['superadmin'],
  webhooks: ['superadmin'],
}

export function can(role: string | null | undefined, capability: Capability): boolean {
  return role != null && (CAPABILITIES[capability] as readonly string[]).includes(role)
}

/** A menu entry: its route name and the capability it needs (none: every admin). */
export interface MenuEntry {
  name: string
  needs?: Capability
}

export const MENU: readonly MenuEntry[] = [
  { name: 'dashboard' },
  { name: 'campaigns' },
  { name: 'calendar' },
  { name: 'builder', needs: 'build' },
  { name: 'review', needs: 'review' },
  { name: 'budget' },
  { name: 'analytics' },
  { name: 'redemptions' },
  { name: 'segments' },
  { name: 'themes' },
  { name: 'stores' },
  { name: 'automation' },
  { name: 'notifications' },
  { name: 'audit', needs: 'audit' },
  { name: 'integrations', needs: 'integrations' },
  { name: 'customers', needs: 'customers' },
  { name: 'accounts', needs: 'accounts' },
  { name: 'webhooks', needs: 'webhooks' },
  { name: 'alerts' },
]

/** The menu a role sees, in order. */
export function menuFor(role: string | null | undefined): string[] {
  return MENU.filter((entry) => !entry.needs || can(role, entry.needs)).map((entry) => entry.name)
}

/** Who decides a level of review (services/campaigns/review.py _LEVEL_ROLES). */
const LEVEL_ROLES: Record<string, readonly Role[]> = {
  '1/1': ['reviewer', 'approver', 'superadmin'],
  '1/2': ['reviewer', 'superadmin'],
  '2/2': ['approver', 'superadmin'],
}

/** Whether this role decides the campaign's next level of review. */
export function decidesLevel(role: string | null | undefined, level: number, levels: number): boolean {
  return role != null && (LEVEL_ROLES[`${level}/${levels}`] as readonly string[] | undefined)?.includes(role) === true
}

/** Self-approval: nobody decides a campaign they created or submitted (the server refuses too). */
export function isOwn(adminId: number | undefined, campaign: { created_by: number; submitted_by: number | null }): boolean {
  return adminId !== undefined && (campaign.created_by === adminId || campaign.submitted_by === adminId)
}

/**
 * What the shell shows for a routed page: the page when it needs nothing or the role has
 * what it needs (the role may be the remembered one while /me is in flight: the server
 * enforces roles anyway); "not allowed" when the server confirmed a role without it; and
 * nothing yet when the role is unknown or only remembered and lacks it (/me may grant it:
 * no flash of the notice).
 */
export type PageAccess = 'page' | 'forbidden' | 'wait'

export function pageAccess(role: string | null | undefined, confirmed: boolean, needs: Capability | undefined): PageAccess {
  if (!needs || can(role, needs)) return 'page'
  return confirmed ? 'forbidden' : 'wait'
}
