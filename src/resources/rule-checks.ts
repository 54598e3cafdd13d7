// The list-entry validators of two kinds: a BGPFilter rule (Calico's CRD XValidation and validator) and a
// NetworkPolicy peer or port (Kubernetes' rules). Used by the BGPFilter and NetworkPolicy entries of VALIDATORS.

import { cidrsOverlap, parseCidr } from './cidr.js';
import { checkAsNumber, checkCidr, checkCommunityText, checkLabelSelector, required } from './field-checks.js';
import { show, type Problem } from './problems.js';
import { type BGPFilterRule, type NetworkPolicyPeer, type NetworkPolicyPort } from './types.js';

/** Calico's validator: a BGPFilter rule's interface is a name of 1..15 such characters, `*` a wildcard. */
const FILTER_INTERFACE = /^[a-zA-Z0-9_.*-]{1,15}$/;
const MAX_PRIORITY = 2147483646;
/** A named port (IANA_SVC_NAME): 1..15 lowercase letters, digits and "-", at least one letter, no "--", no "-" at the ends. */
const PORT_NAME = /^(?=.*[a-z])(?!.*--)[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$/;

/**
 * One BGPFilter rule, with the rules of Calico's CRD (XValidation) and validator: cidr and matchOperator
 * together, prefixLength only with a cidr and inside the family, operations only on Accept, exactly one
 * community to match, exactly one field per operation.
 */
export function checkFilterRule(p: Problem[], path: string, rule: BGPFilterRule, family: 4 | 6): void {
  const bits = family === 4 ? 32 : 128;
  const hasCidr = typeof rule.cidr === 'string' && rule.cidr !== '';
  const hasOperator = typeof rule.matchOperator === 'string' && (rule.matchOperator as string) !== '';
  let cidrLen: number | null = null;
  if (hasCidr) {
    const cidr = parseCidr(rule.cidr!);
    if (cidr === null || cidr.family !== family) {
      p.push({
        path: `${path}.cidr`,
        value: rule.cidr,
        message: `${show(rule.cidr)} is not an IPv${family} CIDR (like ${family === 4 ? '10.244.0.0/16' : 'fd00:10:244::/48'})`,
      });
    } else {
      cidrLen = cidr.len;
    }
  }
  if (hasCidr !== hasOperator) {
    const missing = hasCidr ? 'matchOperator' : 'cidr';
    p.push({
      path: `${path}.${missing}`,
      value: hasCidr ? rule.matchOperator : rule.cidr,
      message: `cidr and matchOperator must both be set or both be empty (${missing} is missing)`,
    });
  }
  if (rule.prefixLength !== undefined) {
    if (!hasCidr)
      p.push({
        path: `${path}.prefixLength`,
        value: rule.prefixLength,
        message: 'cidr is required when prefixLength is set',
      });
    for (const end of ['min', 'max'] as const) {
      const n = rule.prefixLength[end];
      if (n !== undefined && (n < 0 || n > bits))
        p.push({ path: `${path}.prefixLength.${end}`, value: n, message: `${n} is not a prefix length in 0..${bits}` });
    }
    // As Calico renders it: min is raised to the cidr's own length, max capped at the family's.
    const min = Math.max(rule.prefixLength.min ?? 0, cidrLen ?? 0);
    const max = rule.prefixLength.max ?? bits;
    if (min > max)
      p.push({
        path: `${path}.prefixLength`,
        value: rule.prefixLength,
        message: `min ${min} is greater than max ${max}: the rule could match nothing`,
      });
  }
  if (typeof rule.interface === 'string' && !FILTER_INTERFACE.test(rule.interface)) {
    p.push({
      path: `${path}.interface`,
      value: rule.interface,
      message: `${show(rule.interface)} is not an interface name (1..15 of letters, digits, "_", ".", "-", and "*" as a wildcard)`,
    });
  }
  if (rule.communities !== undefined) {
    const values = rule.communities.values ?? [];
    if (values.length !== 1)
      p.push({
        path: `${path}.communities.values`,
        value: values,
        message: `needs exactly one community (Calico matches one value per rule); it has ${values.length}`,
      });
    values.forEach((v, i) => checkCommunityText(p, `${path}.communities.values[${i}]`, v));
  }
  (rule.asPathPrefix ?? []).forEach((asn, i) => checkAsNumber(p, `${path}.asPathPrefix[${i}]`, asn));
  if (typeof rule.priority === 'number' && (rule.priority < 1 || rule.priority > MAX_PRIORITY)) {
    p.push({
      path: `${path}.priority`,
      value: rule.priority,
      message: `${rule.priority} is not a priority in 1..${MAX_PRIORITY}`,
    });
  }
  if (rule.action === undefined)
    p.push({ path: `${path}.action`, value: undefined, message: 'action is required: Accept or Reject' });
  const operations = rule.operations ?? [];
  if (operations.length > 0 && rule.action !== 'Accept') {
    p.push({
      path: `${path}.operations`,
      value: operations,
      message: `operations may only be used with action Accept (the action is ${show(rule.action)})`,
    });
  }
  if (operations.length > 10)
    p.push({
      path: `${path}.operations`,
      value: operations.length,
      message: `has ${operations.length} operations; at most 10`,
    });
  operations.forEach((op, i) => {
    const at = `${path}.operations[${i}]`;
    const set = Object.keys(op).filter((k) => (op as Record<string, unknown>)[k] !== undefined);
    if (set.length !== 1) {
      p.push({
        path: at,
        value: op,
        message: `sets ${set.length === 0 ? 'no field' : set.join(' and ')}: each operation sets exactly one of addCommunity, prependASPath, setPriority`,
      });
    }
    if (op.addCommunity !== undefined) checkCommunityText(p, `${at}.addCommunity.value`, op.addCommunity.value);
    if (op.prependASPath !== undefined) {
      const prefix = op.prependASPath.prefix ?? [];
      if (prefix.length < 1 || prefix.length > 10)
        p.push({
          path: `${at}.prependASPath.prefix`,
          value: prefix,
          message: `has ${prefix.length} AS numbers; 1..10 are allowed`,
        });
      prefix.forEach((asn, j) => checkAsNumber(p, `${at}.prependASPath.prefix[${j}]`, asn));
    }
    if (op.setPriority !== undefined) {
      const v = op.setPriority.value;
      if (typeof v !== 'number' || v < 1 || v > MAX_PRIORITY)
        p.push({
          path: `${at}.setPriority.value`,
          value: v,
          message: `${show(v)} is not a priority in 1..${MAX_PRIORITY}`,
        });
    }
  });
}

export function checkPolicyPeer(p: Problem[], path: string, peer: NetworkPolicyPeer): void {
  const hasSelector = peer.podSelector !== undefined || peer.namespaceSelector !== undefined;
  if (peer.ipBlock === undefined && !hasSelector) {
    p.push({
      path,
      value: peer,
      message: `${path} is empty: set podSelector, namespaceSelector (both = AND) or ipBlock`,
    });
  }
  if (peer.ipBlock !== undefined && hasSelector) {
    p.push({
      path: `${path}.ipBlock`,
      value: peer.ipBlock,
      message: `${path}.ipBlock cannot be combined with podSelector or namespaceSelector in one entry; write them as two entries (entries are ORed)`,
    });
  }
  checkLabelSelector(p, `${path}.podSelector`, peer.podSelector);
  checkLabelSelector(p, `${path}.namespaceSelector`, peer.namespaceSelector);
  if (peer.ipBlock === undefined) return;
  if (!required(p, `${path}.ipBlock.cidr`, peer.ipBlock.cidr, 'like 10.0.0.0/8')) return;
  const cidr = checkCidr(p, `${path}.ipBlock.cidr`, peer.ipBlock.cidr);
  (peer.ipBlock.except ?? []).forEach((text, i) => {
    const at = `${path}.ipBlock.except[${i}]`;
    const except = checkCidr(p, at, text);
    if (cidr === null || except === null) return;
    // Kubernetes: every except must be strictly inside cidr.
    const inside = except.family === cidr.family && except.len > cidr.len && cidrsOverlap(except, cidr);
    if (!inside)
      p.push({
        path: at,
        value: text,
        message: `${show(text)} is not strictly inside ipBlock.cidr ${peer.ipBlock!.cidr} (an except must be a smaller range within it)`,
      });
  });
}

export function checkPolicyPort(p: Problem[], path: string, port: NetworkPolicyPort): void {
  if (typeof port.port === 'number' && (port.port < 1 || port.port > 65535)) {
    p.push({
      path: `${path}.port`,
      value: port.port,
      message: `${port.port} is not a port in 1..65535 (or a container port name like "http")`,
    });
  }
  if (typeof port.port === 'string' && !PORT_NAME.test(port.port)) {
    p.push({
      path: `${path}.port`,
      value: port.port,
      message: `${show(port.port)} is not a port name (1..15 lowercase letters, digits and "-", with at least one letter) or a number`,
    });
  }
  if (port.endPort === undefined) return;
  if (typeof port.port !== 'number') {
    p.push({
      path: `${path}.endPort`,
      value: port.endPort,
      message: `${path}.endPort needs a numeric ${path}.port (found ${show(port.port)}): a range is port..endPort`,
    });
  } else if (port.endPort < port.port || port.endPort > 65535) {
    p.push({
      path: `${path}.endPort`,
      value: port.endPort,
      message: `${port.endPort} is not a port in ${port.port}..65535 (endPort must be at least port ${port.port})`,
    });
  }
}
