// Interface names felix and the CNI plugin agree on: Calico's host-side veth name for a workload, and
// what Linux accepts as an interface name.

import { createHash } from 'node:crypto';

/** Calico's host-side veth name: `cali` + the first 11 hex characters of sha1("<namespace>.<pod>"). */
export function workloadInterfaceName(namespace: string, pod: string): string {
  return `cali${createHash('sha1').update(`${namespace}.${pod}`).digest('hex').slice(0, 11)}`;
}

/** Linux accepts 1..15 bytes, not "." or "..", no "/", ":" or white space (the kernel's dev_valid_name). */
export function interfaceNameProblem(name: string): string | null {
  if (name.length === 0) return 'is empty';
  if (Buffer.byteLength(name) > 15) return `is ${Buffer.byteLength(name)} bytes long (Linux allows at most 15)`;
  if (name === '.' || name === '..') return 'is "." or ".."';
  if (/[/:\s]/.test(name)) return 'contains "/", ":" or white space';
  return null;
}
