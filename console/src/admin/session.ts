// The operators' session: tokens of the admin API under their own key (the till page keeps
// its own, so one browser can hold both), and the signed-in admin as the login or the last
// GET /admin/me answered, kept beside them: a reload knows the role at once and shows the
// page while /me refreshes it (me.ts). A role change or a disable ends the admin's tokens
// on the server (token epoch), so the remembered role is the role those tokens carry.
import { localJsonStore, type Schemas } from '@/api/client'
import { makeSession } from '@/lib/session'

export const session = makeSession('console.admin.tokens')
export const api = session.api.client
export const rememberedAdmin = localJsonStore<Schemas['AdminOut']>('console.admin.me')
