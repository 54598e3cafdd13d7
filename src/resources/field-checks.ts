// The field validators every kind shares: names, AS numbers, durations, CIDRs, addresses, communities,
// Calico selectors and Kubernetes label selectors. Each pushes a Problem naming the field, the value and what
// would be accepted; none knows which kind it is checking.

import { parseCommunity, tryParseIpv4 } from '../../bgp/index.js';
import { formatCidrNetwork, parseAddress, parseCidr, type Cidr } from './cidr.js';
import { show, type Problem } from './problems.js';
import { parseSelector, SelectorSyntaxError } from './selector.js';
import { type LabelSelector } from './types.js';

export const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** Go's time.ParseDuration syntax, as Kubernetes' metav1.Duration reads it: "120s", "1m30s", "1.5h". */
export const DURATION = /^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$/;
export const MAX_AS = 4294967295;
/** RFC 4271 §4.2 and RFC 6793: a 4-octet AS number; 0 is reserved (RFC 7607). */
export const AS_RANGE = `1..${MAX_AS}`;

export function checkCommunityText(p: Problem[], path: string, value: unknown): void {
  if (typeof value === 'string' && parseCommunity(value) !== null) return;
  p.push({
    path,
    value,
    message: `${show(value)} is not a community (standard "65001:100", each part 0..65535, or large "65001:100:200", each part 0..4294967295)`,
  });
}

export function nameProblem(path: string, value: string): Problem | null {
  if (value.length <= 253 && DNS_SUBDOMAIN.test(value)) return null;
  return {
    path,
    value,
    message: `${show(value)} is not a valid name (lowercase letters, digits, "-" and ".", starting and ending with a letter or digit, at most 253 characters)`,
  };
}

export function checkName(p: Problem[], path: string, value: string | undefined): void {
  if (value === undefined) return;
  const problem = nameProblem(path, value);
  if (problem) p.push(problem);
}

export function checkSelector(p: Problem[], path: string, text: string | undefined): void {
  if (text === undefined) return;
  try {
    parseSelector(text);
  } catch (error) {
    if (!(error instanceof SelectorSyntaxError)) throw error;
    p.push({
      path,
      value: text,
      message: `${show(text)} is not a valid selector: ${error.message.replace(/^selector "(?:[^"\\]|\\.)*": /, '')}`,
    });
  }
}

export function checkAsNumber(p: Problem[], path: string, value: number | undefined): void {
  if (value === undefined || typeof value !== 'number') return;
  if (!Number.isInteger(value) || value < 1 || value > MAX_AS)
    p.push({
      path,
      value,
      message: `${show(value)} is not an AS number in ${AS_RANGE} (asdot like "1.10" is accepted too)`,
    });
}

export function checkDuration(p: Problem[], path: string, value: string | undefined): void {
  if (value === undefined || typeof value !== 'string') return;
  if (!DURATION.test(value))
    p.push({ path, value, message: `${show(value)} is not a duration (like "120s", "1m30s" or "500ms")` });
}

export function checkCidr(
  p: Problem[],
  path: string,
  value: string | undefined,
  options: { strict?: boolean } = {},
): Cidr | null {
  if (value === undefined || typeof value !== 'string') return null;
  const cidr = parseCidr(value);
  if (cidr === null) {
    p.push({ path, value, message: `${show(value)} is not a CIDR (like 10.244.0.0/16)` });
    return null;
  }
  if (options.strict && cidr.addr !== cidr.network) {
    p.push({ path, value, message: `${show(value)} has host bits set (did you mean ${formatCidrNetwork(cidr)}?)` });
  }
  return cidr;
}

export function checkIpv4(p: Problem[], path: string, value: string | undefined, what: string): void {
  if (value === undefined || typeof value !== 'string') return;
  if (tryParseIpv4(value) === null) p.push({ path, value, message: `${show(value)} is not ${what}` });
}

export function required(p: Problem[], path: string, value: unknown, example: string): boolean {
  if (value !== undefined && value !== '') return true;
  p.push({ path, value, message: `${path} is required (${example})` });
  return false;
}

/** "ip", "ip:port" or "[ipv6]:port" → address and port; null when it is none of these. */
export function parsePeerIP(text: string): { address: string; port?: number } | null {
  const bracket = /^\[([^\]]+)\](?::([0-9]+))?$/.exec(text);
  const colons = text.split(':').length - 1;
  let address = text;
  let port: string | undefined;
  if (bracket) [, address = '', port] = bracket;
  else if (colons === 1) [address = '', port] = text.split(':');
  if (parseAddress(address) === null) return null;
  if (port === undefined) return { address };
  if (!/^[1-9][0-9]{0,4}$/.test(port) || Number(port) > 65535) return null;
  return { address, port: Number(port) };
}

/** A Kubernetes label key: optional DNS-subdomain prefix and "/", then a name of 1..63 characters. */
export const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
/** A label value: empty, or 1..63 characters like a name. */
export const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

export function checkLabelKey(p: Problem[], path: string, key: string): void {
  const slash = key.lastIndexOf('/');
  const prefix = slash < 0 ? undefined : key.slice(0, slash);
  const name = slash < 0 ? key : key.slice(slash + 1);
  if ((prefix !== undefined && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) || !LABEL_NAME.test(name)) {
    p.push({
      path,
      value: key,
      message: `${show(key)} is not a label key (an optional DNS prefix and "/", then 1..63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit)`,
    });
  }
}

export function checkLabelValue(p: Problem[], path: string, value: string): void {
  if (!LABEL_VALUE.test(value))
    p.push({
      path,
      value,
      message: `${show(value)} is not a label value (empty, or 1..63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit)`,
    });
}

/** metav1.LabelSelector rules: In/NotIn need values, Exists/DoesNotExist take none; keys and values well formed. */
export function checkLabelSelector(p: Problem[], path: string, selector: LabelSelector | undefined): void {
  if (selector === undefined) return;
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    checkLabelKey(p, `${path}.matchLabels`, key);
    checkLabelValue(p, `${path}.matchLabels.${key}`, value);
  }
  (selector.matchExpressions ?? []).forEach((e, i) => {
    const at = `${path}.matchExpressions[${i}]`;
    if (required(p, `${at}.key`, e.key, 'the label key the expression tests')) checkLabelKey(p, `${at}.key`, e.key);
    if (!required(p, `${at}.operator`, e.operator, 'In, NotIn, Exists or DoesNotExist')) return;
    const values = e.values ?? [];
    if ((e.operator === 'In' || e.operator === 'NotIn') && values.length === 0) {
      p.push({
        path: `${at}.values`,
        value: e.values,
        message: `${at}.values must be non-empty when the operator is ${e.operator} (like values: [frontend])`,
      });
    }
    if ((e.operator === 'Exists' || e.operator === 'DoesNotExist') && values.length > 0) {
      p.push({
        path: `${at}.values`,
        value: e.values,
        message: `${at}.values must be empty when the operator is ${e.operator} (found ${show(e.values)})`,
      });
    }
    values.forEach((v, j) => checkLabelValue(p, `${at}.values[${j}]`, v));
  });
}
