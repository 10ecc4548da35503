import { addMessages } from '@/lib/i18n'

addMessages({ 'zh-CN': { 'staff.title': '门店核销' }, en: { 'staff.title': 'Till' } })
