// The signed-in admin (id, username, role): read once after login or on a reload, cleared
// on logout. The menu and the buttons follow its role (lib/roles.ts).
import { ref } from 'vue'
import { unwrap, type Schemas } from '@/api/client'
import { can, type Capability } from './lib/roles'
import { api } from './session'

export type Me = Schemas['AdminOut']

export const me = ref<Me | null>(null)

export async function loadMe(): Promise<Me> {
  me.value = await unwrap(api.GET('/api/v1/admin/me'))
  return me.value
}

export function allowed(capability: Capability | undefined): boolean {
  return !capability || can(me.value?.role, capability)
}
