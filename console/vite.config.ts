/// <reference types="vitest/config" />
// Two pages, one build: /admin/ (operators) and /staff/ (the till page). Their shared,
// content-hashed assets go under /console/assets/, which the server caches for a year;
// each page's index.html is served with Cache-Control: no-cache (handlers/public/console.py).
import { fileURLToPath, URL } from 'node:url'
import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url))

export default defineConfig({
  base: '/console/',
  plugins: [vue()],
  resolve: { alias: { '@': here('./src') } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    chunkSizeWarningLimit: 1200,
    rollupOptions: {
      input: { admin: here('./admin/index.html'), staff: here('./staff/index.html') },
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
