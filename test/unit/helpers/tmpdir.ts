// Runs a function with TMPDIR pointed elsewhere (where felix puts its scratch files), restoring it after.

export async function withTmpdir<T>(path: string, fn: () => Promise<T>): Promise<T> {
  const before = process.env.TMPDIR;
  process.env.TMPDIR = path;
  try {
    return await fn();
  } finally {
    if (before === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = before;
  }
}
