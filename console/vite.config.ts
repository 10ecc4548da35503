/// <reference types="vitest/config" />
// Two pages, one build: /admin/ (operators) and /staff/ (the till page). Their shared,
// content-hashed assets go under /console/assets/, which the server caches for a year;
// each page's index.html is served with Cache-Control: no-cache (handlers/public/console.py).
import { readFileSync } from 'node:fs'
import { fileURLToPath, URL } from 'node:url'
import { defineConfig, type Plugin } from 'vite'
import vue from '@vitejs/plugin-vue'
import Components from 'unplugin-vue-components/vite'
import { ElementPlusResolver } from 'unplugin-vue-components/resolvers'

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url))

// The limits and defaults of the spec blocks the builder's forms check before sending
// (services/campaigns/spec.py declares them once): read from the OpenAPI document that
// scripts/console-build writes (openapi.json), and only those schemas go into the bundle.
const LIMITED_SCHEMAS = ['GroupSpec', 'BargainSpec', 'RedPacketSpec', 'DrawIn', 'PrizeIn']
const LIMIT_KEYS = ['minimum', 'maximum', 'default', 'minItems', 'maxItems', 'minLength', 'maxLength', 'pattern', 'enum']

function specLimits(): Plugin {
  const id = 'virtual:spec-limits'
  return {
    name: 'spec-limits',
    resolveId: (source) => (source === id ? `\0${id}` : null),
    load(resolved) {
      if (resolved !== `\0${id}`) return null
      const path = here('./openapi.json')
      this.addWatchFile(path)
      let text: string
      try {
        text = readFileSync(path, 'utf8')
      } catch {
        // Like src/api/schema.d.ts, it is generated, not committed.
        throw new Error('console/openapi.json is missing: run ./scripts/console-build first')
      }
      const schemas = JSON.parse(text).components.schemas
      const out: Record<string, Record<string, Record<string, unknown>>> = {}
      for (const name of LIMITED_SCHEMAS) {
        out[name] = {}
        for (const [field, prop] of Object.entries<Record<string, unknown>>(schemas[name].properties)) {
          out[name][field] = Object.fromEntries(LIMIT_KEYS.filter((k) => k in prop).map((k) => [k, prop[k]]))
          out[name][field].required = (schemas[name].required ?? []).includes(field)
        }
      }
      return `export default ${JSON.stringify(out)}`
    },
  }
}

export default defineConfig({
  base: '/console/',
  plugins: [
    vue(),
    // Element Plus on demand: each <el-…> tag (and v-loading) a template uses becomes an
    // import of that component and of its CSS, so a page's chunk carries what it shows and
    // the shell no longer parses the whole library (docs/console.md, "Element Plus on
    // demand"). dts: false: no generated components.d.ts to commit or keep fresh; templates
    // stay untyped against Element Plus as they were under app.use (its global types would
    // flag every el-table slot row as DefaultRow: a change of its own). dirs: [] keeps the
    // plugin to Element Plus (our own components are imported by hand).
    Components({ dirs: [], dts: false, resolvers: [ElementPlusResolver({ importStyle: 'css' })] }),
    specLimits(),
  ],
  resolve: { alias: { '@': here('./src') } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    chunkSizeWarningLimit: 1200,
    rollupOptions: {
      input: { admin: here('./admin/index.html'), staff: here('./staff/index.html') },
      output: {
        // Chunks of Element Plus components (and their CSS) are named after their first
        // module, a style entry ("css"): name them for what they are.
        chunkFileNames: (chunk) => `assets/${chunk.name === 'css' ? 'element' : '[name]'}-[hash].js`,
        assetFileNames: (asset) => `assets/${asset.names[0] === 'css.css' ? 'element' : '[name]'}-[hash][extname]`,
      },
    },
  },
  server: {
    // `npm run dev` against a server on :8080 (./scripts/serve): the API stays same-origin.
    proxy: { '/api': 'http://127.0.0.1:8080', '/media': 'http://127.0.0.1:8080' },
  },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
})
