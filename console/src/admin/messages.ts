// The operator console's own strings (shared ones are in src/lib/i18n.ts).
import { addMessages } from '@/lib/i18n'

addMessages({
  'zh-CN': {
    'admin.title': '营销活动控制台',
    'admin.welcome': '欢迎，{name}',
    'admin.not_found': '没有这个页面',
  },
  en: {
    'admin.title': 'Campaign console',
    'admin.welcome': 'Welcome, {name}',
    'admin.not_found': 'No such page',
  },
})
