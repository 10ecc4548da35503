// The signed-in admin (id, username, role): from the login's answer, or on a reload the one
// remembered with the session (session.ts) at once, then GET /admin/me in the background;
// cleared on logout. The menu and the buttons follow its role (lib/roles.ts).
import { ref, watch } from 'vue'
import { unwrap, type Schemas } from '@/api/client'
import { can, pageAccess, type Capability } from './lib/roles'
import { api, rememberedAdmin, session } from './session'

export type Me = Schemas['AdminOut']

// Only with tokens: a remembered admin without them is a leftover (they are cleared together).
export const me = ref<Me | null>(session.signedIn.value ? rememberedAdmin.get() : null)
/** The server said who (login or /me) in this page's life: until then `me` is remembered. */
export const meConfirmed = ref(false)

// Every change kept (flush sync: a reload right after a login finds it).
watch(me, (value) => rememberedAdmin.set(value), { flush: 'sync' })

export async function loadMe(): Promise<Me> {
  me.value = await unwrap(api.GET('/api/v1/admin/me'))
  meConfirmed.value = true
  return me.value
}

/** The login's answer: who, confirmed. */
export function signedInAs(admin: Me): void {
  me.value = admin
  meConfirmed.value = true
}

export function forgetMe(): void {
  me.value = null
  meConfirmed.value = false
}

export function allowed(capability: Capability | undefined): boolean {
  return !capability || can(me.value?.role, capability)
}

/** What the shell shows for a page that needs `capability` (lib/roles.ts pageAccess). */
export function accessTo(capability: Capability | undefined) {
  return pageAccess(me.value?.role, meConfirmed.value, capability)
}
