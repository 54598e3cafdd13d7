// The one polling helper of the tests: waits for a condition, bounded in count and time, and on timeout
// says what it waited for and the last value or error the probe gave. Every test polls through it (unit
// tests too: this file starts nothing and registers nothing), never with a loop of its own.

/** Thrown by a waitFor probe to stop waiting at once (the awaited thing can no longer happen). */
export class WaitAborted extends Error {
  override readonly name = 'WaitAborted';
}

export interface WaitOptions {
  readonly timeoutMs?: number;
  readonly intervalMs?: number;
  /** Names what is awaited, for the timeout message ("bird2 session to 127.0.10.2 Established"). */
  readonly what?: string;
}

/**
 * Polls `probe` until it returns a value that is not undefined/null/false, and returns it. Bounded in
 * time (default 10 s) and therefore in count; on timeout throws naming `what` and the last value or
 * error seen, which is usually the whole diagnosis. A probe that throws WaitAborted ends the wait at once.
 */
export async function waitFor<T>(
  probe: () => T | Promise<T>,
  options: WaitOptions = {},
): Promise<Exclude<T, undefined | null | false>> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const intervalMs = options.intervalMs ?? 50;
  const deadline = Date.now() + timeoutMs;
  let last: unknown = undefined;
  let lastError: unknown = undefined;
  for (let attempt = 0; attempt < Math.ceil(timeoutMs / Math.max(intervalMs, 1)) + 2; attempt++) {
    try {
      const value = await probe();
      if (value !== undefined && value !== null && value !== false)
        return value as Exclude<T, undefined | null | false>;
      last = value;
      lastError = undefined;
    } catch (err) {
      if (err instanceof WaitAborted) throw err;
      lastError = err;
    }
    if (Date.now() >= deadline) break;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  const seen =
    lastError !== undefined
      ? `last error: ${lastError instanceof Error ? lastError.message : String(lastError)}`
      : `last value: ${JSON.stringify(last)}`;
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${options.what ?? 'a condition'} (${seen})`);
}
