// What the Kubernetes API server said, translated to the Datastore's error classes: one row per HTTP status
// (404 not found, 409 exists or conflict, 401, 403, 422), a failure to reach the server at all as
// DatastoreUnavailableError naming the server and the deadline, anything else as DatastoreError.

import { ApiException } from '@kubernetes/client-node';
import {
  AlreadyExistsError,
  ConflictError,
  DatastoreError,
  DatastoreUnavailableError,
  NotFoundError,
} from './types.js';

export interface StatusBody {
  code?: number;
  reason?: string;
  message?: string;
}

function statusOf(err: ApiException<unknown>): StatusBody {
  const body = err.body;
  if (typeof body === 'string') {
    try {
      return JSON.parse(body) as StatusBody;
    } catch {
      return { message: body };
    }
  }
  return (body && typeof body === 'object' ? body : {}) as StatusBody;
}

/** One row per HTTP status the backend maps; the first match wins. */
const STATUS_ERRORS: ReadonlyArray<{
  code: number;
  reason?: string;
  make(what: string, status: StatusBody, server: string): Error;
}> = [
  { code: 404, make: (what) => new NotFoundError(`${what} not found`) },
  { code: 409, reason: 'AlreadyExists', make: (what) => new AlreadyExistsError(`${what} already exists`) },
  {
    code: 409,
    make: (what, s) =>
      new ConflictError(
        `${what} was changed by someone else (the resourceVersion given is not the current one); nothing was written${s.message ? `: ${s.message}` : ''}`,
      ),
  },
  {
    code: 401,
    make: (what, s, server) =>
      new DatastoreError(
        `${what}: the Kubernetes API server ${server} refused the credentials (401 Unauthorized)${s.message ? `: ${s.message}` : ''}`,
      ),
  },
  {
    code: 403,
    make: (what, s, server) =>
      new DatastoreError(
        `${what}: forbidden by ${server} — check the RBAC rules for tortie (403)${s.message ? `: ${s.message}` : ''}`,
      ),
  },
  {
    code: 422,
    make: (what, s) =>
      new DatastoreError(`${what} was refused by the Kubernetes API server as invalid: ${s.message ?? 'no message'}`),
  },
];

function isApiException(err: unknown): err is ApiException<unknown> {
  return (
    err instanceof ApiException ||
    (typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'number' && 'body' in err)
  );
}

/** A failure to talk to the server at all (refused, reset, DNS, deadline), as opposed to a bug or a refusal. */
function isTransportError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  return (
    ['FetchError', 'AbortError', 'TimeoutError'].includes(err.name) ||
    (typeof code === 'string' && /^E[A-Z_]+$/.test(code))
  );
}

export function describeCause(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  if (err.name === 'AbortError' || err.name === 'TimeoutError') return 'no answer in time';
  return typeof code === 'string' ? `${code}: ${err.message}` : err.message;
}

/** Maps any failure of a call about `what` (e.g. `IPPool "p1"`) to the Datastore error classes. */
export function translateApiError(err: unknown, what: string, server: string, timeoutMs: number): Error {
  if (err instanceof DatastoreError) return err;
  if (isApiException(err)) {
    const status = statusOf(err);
    const row = STATUS_ERRORS.find(
      (r) => r.code === err.code && (r.reason === undefined || r.reason === status.reason),
    );
    if (row) return row.make(what, status, server);
    return new DatastoreError(
      `${what}: the Kubernetes API server ${server} answered ${err.code}${status.message ? `: ${status.message}` : ''}`,
    );
  }
  if (!isTransportError(err)) return new DatastoreError(`${what}: ${describeCause(err)}`);
  return new DatastoreUnavailableError(
    `cannot reach the Kubernetes API server at ${server} (deadline ${timeoutMs} ms) for ${what}: ${describeCause(err)}`,
  );
}
