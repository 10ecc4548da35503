// The change-password form's strings (admin console and till page both show it).
import { addMessages } from './i18n'

addMessages({
  'zh-CN': {
    'password.title': '修改密码',
    'password.forced': '您的密码已被重置：请先设置新密码再继续。',
    'password.old': '当前密码（一次性密码）',
    'password.new': '新密码',
    'password.confirm': '再次输入新密码',
    'password.submit': '修改密码',
    'password.done': '密码已修改',
    'password.menu': '修改我的密码',
    'password.err.old': '请输入当前密码',
    'password.err.new': '请输入新密码',
    'password.err.mismatch': '两次输入的新密码不一致',
    'password.err.same': '新密码不能与当前密码相同',
    'error.password_change_required': '请先修改密码',
  },
  en: {
    'password.title': 'Change password',
    'password.forced': 'Your password was reset: set a new one to go on.',
    'password.old': 'Current password (the one-time password)',
    'password.new': 'New password',
    'password.confirm': 'New password again',
    'password.submit': 'Change password',
    'password.done': 'Password changed',
    'password.menu': 'Change my password',
    'password.err.old': 'Type your current password',
    'password.err.new': 'Type a new password',
    'password.err.mismatch': 'The two new passwords differ',
    'password.err.same': 'The new password is the current one',
    'error.password_change_required': 'Change your password first',
  },
})
