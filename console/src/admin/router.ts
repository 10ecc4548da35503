// The operator console's client routes, under /admin/ (the server answers index.html for
// any path below it). Add pages here; each loads on demand so the first page stays small.
import { createRouter, createWebHistory, type RouteRecordRaw } from 'vue-router'

export const routes: RouteRecordRaw[] = [
  { path: '/', name: 'home', component: () => import('./pages/HomePage.vue') },
  { path: '/:rest(.*)*', name: 'not-found', component: () => import('./pages/NotFoundPage.vue') },
]

export const router = createRouter({ history: createWebHistory('/admin/'), routes })
