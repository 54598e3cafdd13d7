// How resource problems are reported: one Problem per bad field, and ResourceError that carries them with
// a message for people ("document 2 (IPPool "p1"): spec.blockSize: 19 is not in 20..32 (IPv4)").

export interface Problem {
  /** Field path like `spec.blockSize`, `metadata.name`, `spec.ipNetworks[1]`. */
  path: string;
  value: unknown;
  /** Says what is wrong with the value and what would be accepted. */
  message: string;
}

/** `spec.x: message`, or just the message when it already starts by naming a field (cross-field rules). */
export function formatProblem(problem: Problem): string {
  const namesField =
    /^(spec|metadata|apiVersion|kind)\b/.test(problem.message) || problem.message.startsWith(problem.path);
  if (problem.path === '' || namesField) return problem.message;
  return `${problem.path}: ${problem.message}`;
}

/** A value as it appears in a message: strings quoted, the rest as JSON. */
export function show(value: unknown): string {
  if (value === undefined) return 'undefined';
  return JSON.stringify(value) ?? String(value);
}

export class ResourceError extends Error {
  /** "IPPool/default-pool" (or "document" when the kind or name could not be read). */
  readonly resource: string;
  /** 1-based document number in the input, when the resource came from a file. */
  readonly index?: number;
  readonly problems: Problem[];

  constructor(resource: string, problems: Problem[], index?: number) {
    super(ResourceError.describe(resource, problems, index));
    this.name = 'ResourceError';
    this.resource = resource;
    this.problems = problems;
    if (index !== undefined) this.index = index;
  }

  private static describe(resource: string, problems: Problem[], index?: number): string {
    const slash = resource.indexOf('/');
    const label = slash < 0 ? resource : `${resource.slice(0, slash)} ${JSON.stringify(resource.slice(slash + 1))}`;
    const where = index === undefined ? label : `document ${index} (${label})`;
    const lines = problems.map(formatProblem);
    if (lines.length === 1) return `${where}: ${lines[0]}`;
    return `${where}: ${lines.length} problems:\n${lines.map((l) => `  - ${l}`).join('\n')}`;
  }
}
