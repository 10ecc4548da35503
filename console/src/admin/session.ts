// The operators' session: tokens of the admin API under their own key (the till page keeps
// its own, so one browser can hold both).
import { makeSession } from '@/lib/session'

export const session = makeSession('console.admin.tokens')
export const api = session.api.client
