// The client's own logic, over a stand-in for the server (the real one is exercised by
// tests/console/test_till_session.py): one shared refresh for concurrent expiries, sign-out
// when the refresh is refused, and the error shape read into ApiError.
import { describe, expect, it } from 'vitest'
import { ApiError, localJsonStore, makeApi, unwrap, type TokenPair, type TokenStore } from './client'

function memoryStore(pair: TokenPair | null): TokenStore & { value: TokenPair | null } {
  return {
    value: pair,
    get() {
      return this.value
    },
    set(next) {
      this.value = next
    },
  }
}

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } })
const refusal = (status: number, code: string, details: Record<string, unknown> = {}) =>
  json(status, { error: { code, message: `${code} message`, details } })

/** A server whose valid access token is `valid`, and which rotates refresh `r1` to (`a2`, `r2`) once. */
function server() {
  const seen = { refreshes: 0, languages: [] as string[] }
  let valid = 'a2'
  const used = new Set<string>()
  const fetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const request = new Request(input, init)
    const url = new URL(request.url)
    if (url.pathname === '/api/v1/auth/refresh') {
      seen.refreshes += 1
      const { refresh_token } = (await request.json()) as { refresh_token: string }
      if (refresh_token !== 'r1' || used.has(refresh_token)) return refusal(401, 'invalid_token')
      used.add(refresh_token)
      await new Promise((resolve) => setTimeout(resolve, 10))
      return json(200, { access_token: 'a2', refresh_token: 'r2', token_type: 'Bearer', expires_in: 900 })
    }
    seen.languages.push(request.headers.get('Accept-Language') ?? '')
    const auth = request.headers.get('Authorization')
    if (auth === 'Bearer garbage') return refusal(401, 'invalid_token')
    if (auth !== `Bearer ${valid}`) return refusal(401, 'token_expired')
    if (url.pathname === '/api/v1/staff/redemptions/preview') {
      return refusal(422, 'validation_failed', { errors: [{ field: 'order_amount', message: 'too big', type: 'less_than_equal' }] })
    }
    if (url.pathname.endsWith('/reverse')) return refusal(403, 'forbidden')
    return json(200, { id: 7, username: 'clara', display_name: 'Clara', role: 'clerk', store: {} })
  }
  return { fetch, seen, expire: () => (valid = 'none') }
}

describe('makeApi', () => {
  it('refreshes once for concurrent expiries and retries each call', async () => {
    const { fetch, seen } = server()
    const tokens = memoryStore({ access_token: 'a1', refresh_token: 'r1' })
    const api = makeApi({ tokens, fetch, baseUrl: 'http://till.test', language: () => 'en' })
    const answers = await Promise.all([1, 2, 3].map(() => unwrap(api.client.GET('/api/v1/staff/me'))))
    expect(answers.map((a) => a.username)).toEqual(['clara', 'clara', 'clara'])
    expect(seen.refreshes).toBe(1)
    expect(tokens.value).toEqual({ access_token: 'a2', refresh_token: 'r2' })
    expect(new Set(seen.languages)).toEqual(new Set(['en']))
  })

  it('retries without a refresh when another call already refreshed', async () => {
    const { fetch, seen } = server()
    const tokens = memoryStore({ access_token: 'a1', refresh_token: 'r1' })
    const api = makeApi({ tokens, fetch, baseUrl: 'http://till.test' })
    await unwrap(api.client.GET('/api/v1/staff/me'))
    // A call that left with the old token (before the refresh) meets token_expired after it.
    let first = true
    const stale = makeApi({
      tokens: {
        get: () => (first ? ((first = false), { access_token: 'a1', refresh_token: 'r1' }) : tokens.value),
        set: (p) => tokens.set(p),
      },
      fetch,
      baseUrl: 'http://till.test',
    })
    expect((await unwrap(stale.client.GET('/api/v1/staff/me'))).username).toBe('clara')
    expect(seen.refreshes).toBe(1)
    expect(tokens.value).toEqual({ access_token: 'a2', refresh_token: 'r2' })
  })

  it('signs out when the refresh is refused, and the call fails with the API error', async () => {
    const { fetch, expire } = server()
    expire()
    const tokens = memoryStore({ access_token: 'a1', refresh_token: 'r1' })
    let signedOut = 0
    const api = makeApi({ tokens, fetch, baseUrl: 'http://till.test', onSignedOut: () => (signedOut += 1) })
    // The refresh works, but the new token is refused too: the call fails, once.
    const error = await unwrap(api.client.GET('/api/v1/staff/me')).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ApiError)
    expect((error as ApiError).code).toBe('token_expired')
    // The next expiry's refresh uses r2, which this server never issued as valid: signed out.
    const again = await unwrap(api.client.GET('/api/v1/staff/me')).catch((e: unknown) => e)
    expect((again as ApiError).status).toBe(401)
    expect(signedOut).toBe(1)
    expect(tokens.value).toBeNull()
  })

  it('signs out on an invalid token without trying a refresh', async () => {
    const { fetch, seen } = server()
    const tokens = memoryStore({ access_token: 'garbage', refresh_token: 'r1' })
    let signedOut = false
    const api = makeApi({ tokens, fetch, baseUrl: 'http://till.test', onSignedOut: () => (signedOut = true) })
    const error = (await unwrap(api.client.GET('/api/v1/staff/me')).catch((e: unknown) => e)) as ApiError
    expect(error.code).toBe('invalid_token')
    expect(signedOut).toBe(true)
    expect(seen.refreshes).toBe(0)
  })

  it('reads field errors and 403s', async () => {
    const { fetch } = server()
    const api = makeApi({ tokens: memoryStore({ access_token: 'a2', refresh_token: 'r2' }), fetch, baseUrl: 'http://till.test' })
    const invalid = (await unwrap(
      api.client.POST('/api/v1/staff/redemptions/preview', { body: { payload: 'x', order_amount: 1 } }),
    ).catch((e: unknown) => e)) as ApiError
    expect(invalid.status).toBe(422)
    expect(invalid.fieldErrors).toEqual([{ field: 'order_amount', message: 'too big', type: 'less_than_equal' }])
    const forbidden = (await unwrap(
      api.client.POST('/api/v1/staff/redemptions/{id}/reverse', { params: { path: { id: 1 } }, body: { reason: 'r' } }),
    ).catch((e: unknown) => e)) as ApiError
    expect(forbidden.forbidden).toBe(true)
    expect(forbidden.code).toBe('forbidden')
  })
})

describe('a reset password', () => {
  it('a 403 password_change_required calls onPasswordChangeRequired; another 403 does not', async () => {
    let told = 0
    const fetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
      const url = new URL(new Request(input, init).url)
      return url.pathname === '/api/v1/admin/me' ? refusal(403, 'password_change_required') : refusal(403, 'forbidden')
    }
    const api = makeApi({
      tokens: memoryStore({ access_token: 'a1', refresh_token: 'r1' }),
      fetch,
      baseUrl: 'http://console.test',
      onPasswordChangeRequired: () => (told += 1),
    })
    await expect(unwrap(api.client.GET('/api/v1/admin/audit'))).rejects.toMatchObject({ code: 'forbidden' })
    expect(told).toBe(0)
    // The body is still readable by the caller: the page shows the error too.
    await expect(unwrap(api.client.GET('/api/v1/admin/me'))).rejects.toMatchObject({ code: 'password_change_required', status: 403 })
    expect(told).toBe(1)
  })
})

/** The part of localStorage the stores use, in memory. */
function memoryStorage(): Storage & { items: Map<string, string> } {
  const items = new Map<string, string>()
  return {
    items,
    get length() {
      return items.size
    },
    clear: () => items.clear(),
    getItem: (key) => items.get(key) ?? null,
    key: (i) => [...items.keys()][i] ?? null,
    removeItem: (key) => void items.delete(key),
    setItem: (key, value) => void items.set(key, value),
  }
}

describe('localJsonStore', () => {
  it('keeps a value as JSON under its key, and forgets it on null', () => {
    const storage = memoryStorage()
    const store = localJsonStore<{ id: number; role: string }>('console.admin.me', storage)
    expect(store.get()).toBeNull()
    store.set({ id: 3, role: 'operator' })
    expect(storage.items.get('console.admin.me')).toBe('{"id":3,"role":"operator"}')
    expect(localJsonStore('console.admin.me', storage).get()).toEqual({ id: 3, role: 'operator' })
    store.set(null)
    expect(storage.items.has('console.admin.me')).toBe(false)
  })
  it('reads what it cannot parse as nothing', () => {
    const storage = memoryStorage()
    storage.setItem('k', '{not json')
    expect(localJsonStore('k', storage).get()).toBeNull()
  })
})
