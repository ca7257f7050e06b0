/** What a caught value says, for logs and user-facing messages (anything can be thrown). */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (typeof err === 'string') return err;
  return String(err);
}
