// The steps that turn what vxlan.calico holds into what it should hold, as `ip` / `bridge` batch lines, and
// which entries are ours (felix/vxlan.ts: ownership). Pure.

import { FELIX_ROUTE_PROTOCOL } from './routes.js';
import { VXLAN_DEVICE, type VxlanDesired } from './vxlan-desired.js';
import type { ObservedNeighbour, VxlanObserved } from './vxlan-observed.js';

export type VxlanStep = { tool: 'ip'; line: string; what: string } | { tool: 'bridge'; line: string; what: string };

export interface VxlanPlan {
  steps: VxlanStep[];
  /** Entries we want that someone else's entry holds: left alone, reported. */
  conflicts: string[];
}

/** Whether a neighbour entry is ours (see the header). */
export function ownNeighbour(n: ObservedNeighbour): boolean {
  return n.permanent && n.protocol === FELIX_ROUTE_PROTOCOL;
}

/**
 * The steps that turn `observed` into `desired`; nothing when they agree. `knownMacs`: FDB MACs this
 * process wanted before (ours even when their neighbour entry is gone).
 */
export function planVxlan(
  observed: VxlanObserved,
  desired: VxlanDesired,
  knownMacs: ReadonlySet<string> = new Set(),
): VxlanPlan {
  const steps: VxlanStep[] = [];
  const conflicts: string[] = [];
  const dev = VXLAN_DEVICE;
  const have = observed.device;
  const want = desired.device;
  if (have !== null && have.kind !== 'vxlan') {
    conflicts.push(
      `a ${have.kind} device named ${dev} exists: it is not a VXLAN device, so it is left alone and no VXLAN entries are programmed`,
    );
    return { steps, conflicts };
  }
  if (want === null) {
    if (have !== null) steps.push({ tool: 'ip', line: `link del ${dev}`, what: `delete ${dev} (no VXLAN pool)` });
    return { steps, conflicts };
  }
  let fresh = have === null;
  if (
    have !== null &&
    (have.vni !== want.vni || have.port !== want.port || have.local !== want.local || have.learning !== false)
  ) {
    steps.push({
      tool: 'ip',
      line: `link del ${dev}`,
      what: `re-create ${dev}: VNI ${String(have.vni)}, port ${String(have.port)}, local ${String(have.local)}, learning ${String(have.learning)} differ`,
    });
    fresh = true;
  }
  const mtu = want.mtu !== undefined ? ` mtu ${want.mtu}` : '';
  if (fresh) {
    steps.push({
      tool: 'ip',
      line: `link add ${dev} address ${want.mac}${mtu} type vxlan id ${want.vni} local ${want.local} dstport ${want.port} nolearning`,
      what: `create ${dev}`,
    });
  } else if (have !== null) {
    if (have.mac !== want.mac)
      steps.push({
        tool: 'ip',
        line: `link set dev ${dev} address ${want.mac}`,
        what: `MAC ${have.mac} → ${want.mac}`,
      });
    if (want.mtu !== undefined && have.mtu !== want.mtu)
      steps.push({ tool: 'ip', line: `link set dev ${dev} mtu ${want.mtu}`, what: `MTU ${have.mtu} → ${want.mtu}` });
  }
  if (fresh || !have!.up) steps.push({ tool: 'ip', line: `link set dev ${dev} up`, what: `${dev} up` });
  const addresses = fresh ? [] : have!.addresses;
  for (const a of addresses)
    if (a !== want.address)
      steps.push({ tool: 'ip', line: `addr del ${a} dev ${dev}`, what: `remove stray address ${a}` });
  if (!addresses.includes(want.address))
    steps.push({ tool: 'ip', line: `addr add ${want.address} dev ${dev}`, what: `address ${want.address}` });

  // Neighbours: tunnel address → MAC, permanent, protocol 80.
  const neighbours = fresh ? [] : observed.neighbours;
  const ownedMacs = new Set<string>(knownMacs);
  const seen = new Set<string>();
  for (const n of neighbours) {
    seen.add(n.ip);
    const wanted = desired.neighbours.get(n.ip);
    if (ownNeighbour(n)) {
      if (n.mac !== null) ownedMacs.add(n.mac);
      if (wanted === undefined)
        steps.push({ tool: 'ip', line: `neigh del ${n.ip} dev ${dev}`, what: `neighbour ${n.ip} no longer wanted` });
      else if (n.mac !== wanted) steps.push(neighStep(n.ip, wanted));
    } else if (wanted !== undefined) {
      if (n.permanent)
        conflicts.push(
          `neighbour ${n.ip} on ${dev} is a permanent entry felix does not own (protocol ${n.protocol ?? 'none'}, MAC ${n.mac ?? 'none'}): ours (MAC ${wanted}) is not written`,
        );
      else steps.push(neighStep(n.ip, wanted));
    }
  }
  for (const [ip, mac] of desired.neighbours) if (!seen.has(ip)) steps.push(neighStep(ip, mac));

  // FDB: MAC → node address, permanent, on the device itself.
  const entries = fresh ? [] : observed.fdb;
  const fdbSeen = new Set<string>();
  for (const f of entries) {
    const wanted = desired.fdb.get(f.mac);
    if (wanted !== undefined) {
      fdbSeen.add(f.mac);
      if (f.dst !== wanted || !f.permanent) steps.push(fdbStep(f.mac, wanted));
    } else if (ownedMacs.has(f.mac) && f.dst !== null) {
      steps.push({
        tool: 'bridge',
        line: `fdb del ${f.mac} dev ${dev} dst ${f.dst} self`,
        what: `FDB ${f.mac} no longer wanted`,
      });
    }
  }
  for (const [mac, dst] of desired.fdb) if (!fdbSeen.has(mac)) steps.push(fdbStep(mac, dst));
  return { steps, conflicts };
}

function neighStep(ip: string, mac: string): VxlanStep {
  return {
    tool: 'ip',
    line: `neigh replace ${ip} lladdr ${mac} dev ${VXLAN_DEVICE} nud permanent protocol ${FELIX_ROUTE_PROTOCOL}`,
    what: `neighbour ${ip} → ${mac}`,
  };
}

function fdbStep(mac: string, dst: string): VxlanStep {
  return {
    tool: 'bridge',
    line: `fdb replace ${mac} dev ${VXLAN_DEVICE} dst ${dst} self permanent`,
    what: `FDB ${mac} → ${dst}`,
  };
}
