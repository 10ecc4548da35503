// A signed-in session of one page (admin or staff): its API client, its tokens in
// localStorage under its own key, and a reactive "signed in" flag the page's shell watches.
import { ref } from 'vue'
import { localTokenStore, makeApi, type Api, type TokenPair } from '@/api/client'
import { acceptLanguage } from './i18n'

export interface Session {
  api: Api
  signedIn: ReturnType<typeof ref<boolean>>
  /** The password was reset: only the change-password form until it is changed (set by the
   * login's `password_change_required` or any call's 403 password_change_required). */
  mustChangePassword: ReturnType<typeof ref<boolean>>
  /** Keeps a fresh pair (after a login). */
  start(pair: TokenPair): void
  /** Revokes the refresh token (best effort) and forgets the pair. */
  logout(): Promise<void>
}

export function makeSession(storageKey: string): Session {
  const tokens = localTokenStore(storageKey)
  const signedIn = ref<boolean>(tokens.get() !== null)
  const mustChangePassword = ref<boolean>(false)
  const api = makeApi({
    tokens,
    language: () => acceptLanguage.value,
    onSignedOut: () => {
      signedIn.value = false
    },
    onPasswordChangeRequired: () => {
      mustChangePassword.value = true
    },
  })
  return {
    api,
    signedIn,
    mustChangePassword,
    start(pair) {
      tokens.set({ access_token: pair.access_token, refresh_token: pair.refresh_token })
      signedIn.value = true
    },
    async logout() {
      const pair = tokens.get()
      tokens.set(null)
      signedIn.value = false
      mustChangePassword.value = false
      if (pair) {
        // The server revokes the session; a failure here changes nothing for this browser.
        await api.client.POST('/api/v1/auth/logout', { body: { refresh_token: pair.refresh_token } }).catch(() => {})
      }
    },
  }
}
