// The till's session: staff tokens under their own key, and who is signed in (from the
// login's answer, or GET /api/v1/staff/me after a reload).
import { ref } from 'vue'
import { makeSession } from '@/lib/session'
import { unwrap, type Schemas } from '@/api/client'

export type StaffSelf = Schemas['StaffSelfOut']

export const session = makeSession('console.staff.tokens')
export const api = session.api.client
export const me = ref<StaffSelf | null>(null)

export async function loadMe(): Promise<void> {
  me.value = await unwrap(api.GET('/api/v1/staff/me'))
}

export async function login(username: string, password: string): Promise<void> {
  const answer = await unwrap(api.POST('/api/v1/staff/auth/login', { body: { username, password } }))
  session.start(answer)
  // A reset password: the till shows only the change form until it is changed.
  session.mustChangePassword.value = answer.password_change_required
  me.value = answer.staff
}

export async function logout(): Promise<void> {
  me.value = null
  await session.logout()
}
