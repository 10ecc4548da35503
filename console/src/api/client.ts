// The console's one way to the API: openapi-fetch typed by src/api/schema.d.ts (generated
// from the server's OpenAPI document by ./scripts/console-build), plus what every page
// needs — the bearer token, one refresh-and-retry on 401 token_expired (refresh tokens
// rotate: each refresh answers a new pair and revokes the old one), and the API's error
// shape {"error": {code, message, details}} turned into an ApiError a page can show.
import createClient from 'openapi-fetch'
import type { paths, components } from './schema'

export type Schemas = components['schemas']

/** One field's complaint, as the API's 422 validation_failed lists them in details.errors. */
export interface FieldError {
  field: string
  message: string
  type?: string
}

/** A refused request: the API's code, message and details, plus the HTTP status. */
export class ApiError extends Error {
  readonly status: number
  readonly code: string
  readonly details: Record<string, unknown>

  constructor(status: number, code: string, message: string, details: Record<string, unknown> = {}) {
    super(message)
    this.name = 'ApiError'
    this.status = status
    this.code = code
    this.details = details
  }

  /** The field errors of a 422 (empty otherwise), field names as the API gives them. */
  get fieldErrors(): FieldError[] {
    const list = this.details.errors
    return Array.isArray(list) ? (list as FieldError[]) : []
  }

  /** A 403: the caller is signed in but this role may not do it (show as such, not blank). */
  get forbidden(): boolean {
    return this.status === 403
  }
}

/** The API's error shape in a parsed body, else a generic error naming the HTTP status. */
export function errorFromBody(status: number, statusText: string, body: unknown): ApiError {
  const error = (body as { error?: { code?: unknown; message?: unknown; details?: unknown } } | null)?.error
  if (error && typeof error.code === 'string') {
    return new ApiError(
      status,
      error.code,
      typeof error.message === 'string' ? error.message : error.code,
      (error.details as Record<string, unknown>) ?? {},
    )
  }
  return new ApiError(status, `http_${status}`, statusText || `HTTP ${status}`)
}

/** Reads the error shape out of a failed response whose body is still unread. */
export async function errorOf(response: Response): Promise<ApiError> {
  let body: unknown = null
  try {
    body = await response.clone().json()
  } catch {
    // Not JSON (a proxy's page, a network middlebox): keep the status.
  }
  return errorFromBody(response.status, response.statusText, body)
}

export interface TokenPair {
  access_token: string
  refresh_token: string
}

/** A value kept as JSON under one key (localStorage per page); null when absent or unreadable. */
export interface JsonStore<T> {
  get(): T | null
  set(value: T | null): void
}

export function localJsonStore<T>(key: string, storage: Storage = window.localStorage): JsonStore<T> {
  return {
    get() {
      const raw = storage.getItem(key)
      if (!raw) return null
      try {
        return JSON.parse(raw) as T
      } catch {
        return null
      }
    },
    set(value) {
      if (value) storage.setItem(key, JSON.stringify(value))
      else storage.removeItem(key)
    },
  }
}

/** Where a session keeps its tokens (localStorage per page, under its own key). */
export type TokenStore = JsonStore<TokenPair>

export function localTokenStore(key: string, storage: Storage = window.localStorage): TokenStore {
  return localJsonStore<TokenPair>(key, storage)
}

export interface ApiOptions {
  tokens: TokenStore
  /** Called when the session is over (refresh refused): the page shows its login. */
  onSignedOut?: () => void
  baseUrl?: string
  fetch?: typeof fetch
  /** The Accept-Language to send (the page's language switch), so the API's texts follow it. */
  language?: () => string
  /** Called when a call answers 403 password_change_required (a reset password): the page
   * shows only its change-password form until it is changed. */
  onPasswordChangeRequired?: () => void
}

const REFRESH_PATH = '/api/v1/auth/refresh'

/**
 * A typed client whose calls carry the bearer token and survive one access-token expiry.
 *
 * Concurrent calls that all meet token_expired share one refresh: a refresh token is good
 * once (rotation), so a second refresh with the same one would sign the user out.
 */
export function makeApi(options: ApiOptions) {
  const baseFetch = options.fetch ?? globalThis.fetch.bind(globalThis)
  const baseUrl = options.baseUrl ?? ''
  let refreshing: Promise<boolean> | null = null

  async function refresh(): Promise<boolean> {
    const pair = options.tokens.get()
    if (!pair) return false
    const response = await baseFetch(`${baseUrl}${REFRESH_PATH}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ refresh_token: pair.refresh_token }),
    })
    if (!response.ok) {
      options.tokens.set(null)
      options.onSignedOut?.()
      return false
    }
    const next = (await response.json()) as TokenPair
    options.tokens.set({ access_token: next.access_token, refresh_token: next.refresh_token })
    return true
  }

  function sharedRefresh(): Promise<boolean> {
    refreshing ??= refresh().finally(() => {
      refreshing = null
    })
    return refreshing
  }

  async function authorizedFetch(input: Request): Promise<Response> {
    // Kept for the retry: a Request's body can be read once.
    const retry = input.clone()
    /** Sends with the current token; answers the response and the token it went with. */
    const send = async (request: Request): Promise<[Response, string | undefined]> => {
      const pair = options.tokens.get()
      if (pair) request.headers.set('Authorization', `Bearer ${pair.access_token}`)
      if (options.language && !request.headers.has('Accept-Language')) {
        request.headers.set('Accept-Language', options.language())
      }
      return [await baseFetch(request), pair?.access_token]
    }
    const [response, sentWith] = await send(input)
    if (response.status === 403 && options.onPasswordChangeRequired) {
      if ((await errorOf(response)).code === 'password_change_required') options.onPasswordChangeRequired()
      return response
    }
    if (response.status !== 401 || !options.tokens.get()) return response
    const error = await errorOf(response)
    if (error.code !== 'token_expired') {
      if (error.code === 'invalid_token') {
        options.tokens.set(null)
        options.onSignedOut?.()
      }
      return response
    }
    // Another call refreshed while this one was out: its new token is good, retry with it
    // (a second refresh would spend the rotated refresh token for nothing).
    if (options.tokens.get()?.access_token !== sentWith) return (await send(retry))[0]
    return (await sharedRefresh()) ? (await send(retry))[0] : response
  }

  const client = createClient<paths>({ baseUrl, fetch: authorizedFetch })
  return { client, refresh: sharedRefresh, tokens: options.tokens }
}

export type Api = ReturnType<typeof makeApi>
export type ApiClient = Api['client']

/**
 * The data of an openapi-fetch answer, or its error thrown as an ApiError.
 *
 * Usage: `const me = await unwrap(api.client.GET('/api/v1/staff/me'))`.
 */
export async function unwrap<T>(call: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  // openapi-fetch has read the body already: its parsed error is the API's error shape.
  const { data, error, response } = await call
  if (!response.ok) throw errorFromBody(response.status, response.statusText, error)
  return data as T
}
