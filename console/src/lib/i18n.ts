// A tiny dictionary-based i18n: zh-CN by default, en as the other choice, remembered per
// browser. Pages register their own messages with addMessages(); t() looks a key up in the
// current language, then in zh-CN, then shows the key itself (a missing string is visible,
// never blank). {name} placeholders are filled from params.
import { computed, ref } from 'vue'

export const LOCALES = ['zh-CN', 'en'] as const
export type Locale = (typeof LOCALES)[number]
export type Messages = Record<string, string>

const LOCALE_KEY = 'console.locale'
const dictionaries: Record<Locale, Messages> = { 'zh-CN': {}, en: {} }

function initialLocale(): Locale {
  const saved = typeof window === 'undefined' ? null : window.localStorage.getItem(LOCALE_KEY)
  return (LOCALES as readonly string[]).includes(saved ?? '') ? (saved as Locale) : 'zh-CN'
}

export const locale = ref<Locale>(initialLocale())

export function setLocale(next: Locale): void {
  locale.value = next
  if (typeof window !== 'undefined') {
    window.localStorage.setItem(LOCALE_KEY, next)
    document.documentElement.lang = next
  }
}

/** Adds (or overrides) messages; call at module load of the page that uses them. */
export function addMessages(messages: Record<Locale, Messages>): void {
  for (const lang of LOCALES) Object.assign(dictionaries[lang], messages[lang])
}

export function has(key: string, lang: Locale = locale.value): boolean {
  return key in dictionaries[lang] || key in dictionaries['zh-CN']
}

export function t(key: string, params: Record<string, string | number> = {}, lang: Locale = locale.value): string {
  const text = dictionaries[lang][key] ?? dictionaries['zh-CN'][key] ?? key
  return text.replace(/\{(\w+)\}/g, (whole, name: string) => (name in params ? String(params[name]) : whole))
}

/** The Accept-Language the console sends, so the API's own texts follow the switch. */
export const acceptLanguage = computed(() => (locale.value === 'en' ? 'en' : 'zh-CN'))

addMessages({
  'zh-CN': {
    'lang.switch': 'English',
    'common.login': '登录',
    'common.logout': '退出登录',
    'common.username': '用户名',
    'common.password': '密码',
    'common.cancel': '取消',
    'common.confirm': '确认',
    'common.retry': '重试',
    'common.loading': '加载中…',
    'common.forbidden': '没有权限：{message}',
    'common.network': '网络错误，请重试',
    'common.session_over': '登录已过期，请重新登录',
  },
  en: {
    'lang.switch': '中文',
    'common.login': 'Sign in',
    'common.logout': 'Sign out',
    'common.username': 'Username',
    'common.password': 'Password',
    'common.cancel': 'Cancel',
    'common.confirm': 'Confirm',
    'common.retry': 'Retry',
    'common.loading': 'Loading…',
    'common.forbidden': 'Not allowed: {message}',
    'common.network': 'Network error, please retry',
    'common.session_over': 'Your session ended: please sign in again',
  },
})
