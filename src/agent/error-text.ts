/** An error's message for logs, warnings and status (a thrown non-Error as text). */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
