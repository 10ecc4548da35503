import { nextTick, ref } from 'vue'
import { describe, expect, it } from 'vitest'
import { hasChoice, lazyOptions } from './lazyOptions'

describe('lazyOptions', () => {
  it('fetches nothing until asked, then once, sharing a call in flight', async () => {
    let calls = 0
    const o = lazyOptions(async () => {
      calls++
      return [1, 2]
    })
    expect(calls).toBe(0)
    const first = o.load()
    expect(o.loading.value).toBe(true)
    await Promise.all([first, o.load()])
    expect(calls).toBe(1)
    expect(o.items.value).toEqual([1, 2])
    expect(o.loading.value).toBe(false)
    await o.load()
    expect(calls).toBe(1)
  })

  it('stays empty after a failure and tries again on the next ask', async () => {
    let calls = 0
    const o = lazyOptions(async () => {
      if (++calls === 1) throw new Error('network')
      return ['a']
    })
    await o.load()
    expect(o.items.value).toEqual([])
    expect(o.loading.value).toBe(false)
    await o.load()
    expect(calls).toBe(2)
    expect(o.items.value).toEqual(['a'])
  })
})

describe('hasChoice', () => {
  it('is true for an id or a non-empty list', () => {
    expect(hasChoice(3)).toBe(true)
    expect(hasChoice([3])).toBe(true)
    expect(hasChoice([])).toBe(false)
    expect(hasChoice(null)).toBe(false)
    expect(hasChoice(undefined)).toBe(false)
  })
})

describe('lazyOptions with a choice', () => {
  it('loads at once for a choice held or set later, not for none', async () => {
    let calls = 0
    const fetch = async () => {
      calls++
      return [7]
    }
    lazyOptions(fetch, ref<number | null>(null))
    lazyOptions(fetch, ref<number[]>([]))
    expect(calls).toBe(0)
    const held = lazyOptions(fetch, ref<number | null>(7))
    expect(calls).toBe(1)
    await held.load()
    expect(calls).toBe(1)
    const later = ref<number[]>([])
    const set = lazyOptions(fetch, later)
    later.value.push(7)
    await nextTick()
    expect(calls).toBe(2)
    await set.load()
    expect(calls).toBe(2)
    expect(set.items.value).toEqual([7])
  })
})
