/// <reference types="vite/client" />
declare module '*.vue' {
  import type { DefineComponent } from 'vue'
  const component: DefineComponent<object, object, unknown>
  export default component
}
declare module 'virtual:spec-limits' {
  /** schema → field → its limits in the OpenAPI document (vite.config.ts, specLimits). */
  const limits: Record<string, Record<string, {
    minimum?: number; maximum?: number; default?: unknown; minItems?: number; maxItems?: number
    minLength?: number; maxLength?: number; pattern?: string; enum?: string[]; required: boolean
  }>>
  export default limits
}
