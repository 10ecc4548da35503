// A picker's options, fetched when first needed rather than when its page mounts: that call
// would compete with the page's own list for the server and for the browser's main thread.
// Needed means the select is opened (its `load` on visible-change), or the picker holds a
// choice, now or set from outside later (an edited campaign's stores): then at once, so the
// choice shows its label, not a bare id. Loaded once; concurrent asks share one call; a
// failed load leaves the options empty (the page shows its own errors) and the next ask
// tries again.
import { ref, watch, type Ref } from 'vue'

type Choice = number | number[] | null | undefined

export interface LazyOptions<T> {
  items: Ref<T[]>
  loading: Ref<boolean>
  load: () => Promise<void>
}

export function lazyOptions<T>(fetch: () => Promise<T[]>, chosen?: Ref<Choice>): LazyOptions<T> {
  const items = ref([]) as Ref<T[]>
  const loading = ref(false)
  let loaded = false
  let pending: Promise<void> | null = null

  function load(): Promise<void> {
    if (loaded) return Promise.resolve()
    if (!pending) {
      loading.value = true
      pending = fetch()
        .then(
          (got) => {
            items.value = got
            loaded = true
          },
          () => {
            // Empty options; a later ask retries.
          },
        )
        .finally(() => {
          loading.value = false
          pending = null
        })
    }
    return pending
  }

  if (chosen) {
    // deep: a list of ids may be changed in place.
    watch(chosen, (value) => {
      if (hasChoice(value)) void load()
    }, { immediate: true, deep: true })
  }
  return { items, loading, load }
}

/** Whether a picker's model holds a choice (whose label needs the options now). */
export function hasChoice(value: Choice): boolean {
  return Array.isArray(value) ? value.length > 0 : value !== null && value !== undefined
}
