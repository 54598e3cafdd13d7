// Test helper: run a function that must throw a BgpError and return it (anything else fails the test).
import { BgpError } from '../../../bgp/errors.js';

export function catchBgp(fn: () => unknown): BgpError {
  try {
    fn();
  } catch (e) {
    if (e instanceof BgpError) return e;
    throw e;
  }
  throw new Error('expected a BgpError, nothing was thrown');
}
