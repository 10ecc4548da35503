// The operator console's client routes, under /admin/ (the server answers index.html for
// any path below it). Every page loads on demand so the first page stays small (the
// builder and the charts are their own chunks). `meta.needs` names the capability a page
// needs (lib/roles.ts): without it the shell shows the "not allowed" page, never a blank one.
import { createRouter, createWebHistory, type RouteRecordRaw } from 'vue-router'
import type { Capability } from './lib/roles'

declare module 'vue-router' {
  interface RouteMeta {
    needs?: Capability
  }
}

export const routes: RouteRecordRaw[] = [
  { path: '/', name: 'dashboard', component: () => import('./pages/DashboardPage.vue') },
  { path: '/campaigns', name: 'campaigns', component: () => import('./pages/CampaignsPage.vue') },
  { path: '/campaigns/:id(\\d+)', name: 'campaign', component: () => import('./pages/CampaignPage.vue') },
  { path: '/calendar', name: 'calendar', component: () => import('./pages/CalendarPage.vue') },
  { path: '/builder', name: 'builder', component: () => import('./pages/BuilderPage.vue'), meta: { needs: 'build' } },
  {
    path: '/builder/:id(\\d+)',
    name: 'builder-edit',
    component: () => import('./pages/BuilderPage.vue'),
    meta: { needs: 'build' },
  },
  { path: '/review', name: 'review', component: () => import('./pages/ReviewPage.vue'), meta: { needs: 'review' } },
  { path: '/budget', name: 'budget', component: () => import('./pages/BudgetPage.vue') },
  { path: '/analytics', name: 'analytics', component: () => import('./pages/AnalyticsPage.vue') },
  { path: '/redemptions', name: 'redemptions', component: () => import('./pages/RedemptionsPage.vue') },
  { path: '/segments', name: 'segments', component: () => import('./pages/SegmentsPage.vue') },
  { path: '/themes', name: 'themes', component: () => import('./pages/ThemesPage.vue') },
  { path: '/stores', name: 'stores', component: () => import('./pages/StoresPage.vue') },
  { path: '/automation', name: 'automation', component: () => import('./pages/AutomationPage.vue') },
  { path: '/notifications', name: 'notifications', component: () => import('./pages/NotificationsPage.vue') },
  { path: '/audit', name: 'audit', component: () => import('./pages/AuditPage.vue'), meta: { needs: 'audit' } },
  {
    path: '/integrations',
    name: 'integrations',
    component: () => import('./pages/IntegrationsPage.vue'),
    meta: { needs: 'integrations' },
  },
  { path: '/customers', name: 'customers', component: () => import('./pages/CustomersPage.vue'), meta: { needs: 'customers' } },
  {
    path: '/customers/:id(\\d+)',
    name: 'customer',
    component: () => import('./pages/CustomerPage.vue'),
    meta: { needs: 'customers' },
  },
  { path: '/webhooks', name: 'webhooks', component: () => import('./pages/WebhooksPage.vue'), meta: { needs: 'webhooks' } },
  { path: '/alerts', name: 'alerts', component: () => import('./pages/AlertsPage.vue') },
  { path: '/accounts', name: 'accounts', component: () => import('./pages/AccountsPage.vue'), meta: { needs: 'accounts' } },
  { path: '/me/password', name: 'password', component: () => import('./pages/PasswordPage.vue') },
  { path: '/:rest(.*)*', name: 'not-found', component: () => import('./pages/NotFoundPage.vue') },
]

export const router = createRouter({ history: createWebHistory('/admin/'), routes })
