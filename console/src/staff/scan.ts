// What a scan is: the text a keyboard-wedge scanner typed (a QR payload or a 16-digit
// barcode number) or a code typed by hand, and the Idempotency-Key that goes with it.

/** Trimmed; a scanner's trailing CR/LF/TAB and stray spaces dropped. Empty when nothing is left. */
export function normalizeScan(text: string): string {
  return text.replace(/[\r\n\t]/g, '').trim()
}

/**
 * A fresh key for one scan's redemption: a double tap or a retry sends the same key, so
 * the server redeems once. crypto.randomUUID needs a secure context; getRandomValues does
 * not, so a till on plain HTTP in a shop's LAN gets a key too.
 */
export function newIdempotencyKey(random: (bytes: Uint8Array) => Uint8Array = (b) => crypto.getRandomValues(b)): string {
  const bytes = random(new Uint8Array(16))
  return `till-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`
}
