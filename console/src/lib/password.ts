// The change-password form's own checks before it asks (the server checks the real rules:
// length, not containing the username, not a common password — docs/accounts.md).

/** The i18n key of what is wrong with the form, or '' when it may be sent. */
export function passwordFormProblem(form: { old: string; next: string; confirm: string }): string {
  if (!form.old) return 'password.err.old'
  if (!form.next) return 'password.err.new'
  if (form.next !== form.confirm) return 'password.err.mismatch'
  if (form.next === form.old) return 'password.err.same'
  return ''
}
