/**
 * Text that is someone else's (an IdP's error description, a claim) as one line of a log or a text
 * page: control characters (CR, LF, ESC, C1) and Unicode line separators become spaces, so it can
 * neither start a forged line nor drive a terminal.
 */
export function oneLine(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ')
}
