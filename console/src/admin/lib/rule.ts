// The audience rule builder's model: a tree the forms edit (groups all/any, each group or
// predicate may be negated) and its conversion to and from the API's rule JSON
// (services/audience/rule_syntax.py): {"all": [...]}, {"any": [...]}, {"not": r}, {"<predicate>": value}.
import { fenToYuan, yuanToFen } from '@/lib/money'

export const TIERS = ['standard', 'silver', 'gold', 'platinum'] as const
export const STAGES = ['new', 'unactivated', 'active', 'silent', 'churned'] as const
export const WINDOWS = [7, 30, 90, 180, 365] as const

/** How a predicate's value is edited and sent. */
export type ValueKind = 'choices' | 'texts' | 'ids' | 'spend' | 'visits' | 'days' | 'id' | 'name'

export const PREDICATES: Record<string, { kind: ValueKind; choices?: readonly string[] }> = {
  tier: { kind: 'choices', choices: TIERS },
  interest_tags_any: { kind: 'texts' },
  city: { kind: 'texts' },
  preferred_store: { kind: 'ids' },
  visited_store: { kind: 'ids' },
  lifecycle_stage: { kind: 'choices', choices: STAGES },
  spend_at_least: { kind: 'spend' },
  visits_at_least: { kind: 'visits' },
  registered_within_days: { kind: 'days' },
  joined_campaign: { kind: 'id' },
  completed_campaign: { kind: 'id' },
  holds_coupon: { kind: 'id' },
  segment: { kind: 'name' },
}
export const PREDICATE_NAMES = Object.keys(PREDICATES)

export type JsonRule = Record<string, unknown>

export interface PredNode {
  type: 'pred'
  key: number
  negate: boolean
  name: string
  /** choices / texts / ids (ids as digit strings) */
  values: string[]
  /** spend / visits window */
  days: number
  /** spend: yuan as typed; visits: count; days / id: the number; name: the segment */
  text: string
}

export interface GroupNode {
  type: 'group'
  key: number
  negate: boolean
  op: 'all' | 'any'
  children: RuleNode[]
}

export type RuleNode = PredNode | GroupNode

let nextKey = 1
const key = () => nextKey++

export function newPred(name: string = 'tier'): PredNode {
  return { type: 'pred', key: key(), negate: false, name, values: [], days: 30, text: '' }
}

export function newGroup(op: 'all' | 'any' = 'all', children: RuleNode[] = []): GroupNode {
  return { type: 'group', key: key(), negate: false, op, children }
}

const isId = (text: string) => /^[1-9]\d{0,17}$/.test(text.trim())
const isCount = (text: string) => /^\d{1,10}$/.test(text.trim())

/** A predicate's JSON value, or undefined while the form is incomplete. */
function predValue(node: PredNode): unknown {
  const spec = PREDICATES[node.name]
  if (!spec) return undefined
  const values = node.values.map((v) => v.trim()).filter((v) => v !== '')
  switch (spec.kind) {
    case 'choices':
    case 'texts':
      return values.length ? values : undefined
    case 'ids':
      return values.length && values.every(isId) ? values.map(Number) : undefined
    case 'spend': {
      const fen = yuanToFen(node.text)
      return fen !== null && fen >= 0 ? { days: node.days, amount: fen } : undefined
    }
    case 'visits':
      return isCount(node.text) ? { days: node.days, count: Number(node.text) } : undefined
    case 'days':
    case 'id':
      return isId(node.text) ? Number(node.text) : undefined
    case 'name':
      return node.text.trim() ? node.text.trim() : undefined
  }
}

/**
 * The API's JSON for the tree; incomplete predicates and empty groups are left out (the
 * preview then counts what is complete). Null when nothing is left: no rule, everyone.
 */
export function toJson(node: RuleNode): JsonRule | null {
  let out: JsonRule | null
  if (node.type === 'pred') {
    const value = predValue(node)
    out = value === undefined ? null : { [node.name]: value }
  } else {
    const children = node.children.map(toJson).filter((c): c is JsonRule => c !== null)
    out = children.length ? { [node.op]: children } : null
  }
  return out && node.negate ? { not: out } : out
}

/** Whether every predicate of the tree is filled in (what toJson sends is all of it). */
export function isComplete(node: RuleNode): boolean {
  return node.type === 'pred' ? predValue(node) !== undefined : node.children.every(isComplete)
}

/** The tree for an API rule (a saved segment, a campaign's audience_rule); throws on an unknown shape. */
export function fromJson(json: unknown): GroupNode {
  const node = parseNode(json)
  // The builder's root is always a group: a lone predicate becomes "all of [it]".
  return node.type === 'group' ? node : newGroup('all', [node])
}

function parseNode(json: unknown): RuleNode {
  if (json === null || typeof json !== 'object' || Array.isArray(json) || Object.keys(json).length !== 1) {
    throw new Error('a rule node is an object with one key')
  }
  const [[name, value]] = Object.entries(json as Record<string, unknown>)
  if (name === 'not') {
    const inner = parseNode(value)
    if (!inner.negate) return { ...inner, negate: true }
    // not(not(x)): keep both by wrapping the inner one in a group.
    return { ...newGroup('all', [inner]), negate: true }
  }
  if (name === 'all' || name === 'any') {
    if (!Array.isArray(value)) throw new Error(`${name} takes a list`)
    return newGroup(name, value.map(parseNode))
  }
  const spec = PREDICATES[name]
  if (!spec) throw new Error(`unknown predicate ${name}`)
  const node = newPred(name)
  switch (spec.kind) {
    case 'choices':
    case 'texts':
    case 'ids':
      node.values = (Array.isArray(value) ? value : [value]).map(String)
      break
    case 'spend': {
      const v = value as { days: number; amount: number }
      node.days = v.days
      node.text = fenToYuan(v.amount)
      break
    }
    case 'visits': {
      const v = value as { days: number; count: number }
      node.days = v.days
      node.text = String(v.count)
      break
    }
    default:
      node.text = String(value)
  }
  return node
}
