// The felix dataplane driver's vocabulary (dataplane.ts is the driver): its options, the node's view the agent
// hands it (`DataplaneInput`) and what it reports (`DataplaneStatus`). Types only.

import type { NftLike, NftTableStatus } from './nft-table.js';
import type { CalcInput, CalcVxlan } from './calc-types.js';
import type { Ipv6DataplaneOptions } from './ipv6-dataplane.js';
import type { CalcInput6 } from './route-calc6.js';
import type { VxlanRunner, VxlanStatus, VxlanWatch } from './vxlan.js';
import type { Kernel } from './kernel.js';
import type { ApplyResult, RouteTableClock } from './route-table.js';
import type { Tunl0Deps, Tunl0Options } from '../ipip/tunl0.js';
import type { Logger } from '../bgp/log.js';
import type { SysctlIo } from './kernel-settings.js';

/** The logger methods the driver uses. */
export type DataplaneLog = Pick<Logger, 'info' | 'warn' | 'error'>;

export interface DataplaneOptions {
  kernel: Kernel;
  /** A fresh kernel connection for the reconciler's one retry. */
  reconnect?: () => Kernel;
  log: DataplaneLog;
  /** tunl0 management: the namespace (tests), whether a non-IPIP stand-in is managed, an injected `ip`. */
  /** `ip`: the real one (ip-command.ts) in `netns` when absent. */
  tunl0?: Pick<Tunl0Options, 'netns' | 'standIn'> & Partial<Tunl0Deps>;
  /** Full route re-read and tunl0 repair this often (default 90,000 ms). */
  resyncMs?: number;
  graceMs?: number;
  debounceMs?: number;
  retryMs?: number;
  /** Every timer of the driver, its RouteTable and nft keepers (bgp/clock.ts; default: the system clock). */
  clock?: RouteTableClock;
  /** Called after every apply (metrics, tests). */
  onApplied?: (result: ApplyResult) => void;
  /**
   * nftables for natOutgoing's table (`new Nft()` in the agent; `new Nft({ netns })` in tests). Absent:
   * natOutgoing is not programmed (unit tests on an in-memory kernel must not reach the host's nftables).
   */
  nft?: NftLike;
  /** /proc/sys for the kernel settings check (`procSysIo()` in the agent). Absent: not checked. */
  sysctl?: SysctlIo;
  /**
   * `ip`/`bridge` for vxlan.calico (`vxlanRunner()` in the agent), and the neighbour/FDB monitor that makes a
   * change re-checked at once (`vxlanWatch()`; absent: drift waits for the resync). Absent: VXLAN is not programmed.
   */
  vxlan?: { run: VxlanRunner; watch?: VxlanWatch };
  /** IPv6 routes, forwarding and NAT (ipv6-dataplane.ts). Absent: IPv6 is not programmed. */
  ipv6?: Omit<Ipv6DataplaneOptions, 'log'>;
}

/** What the agent knows; the driver adds whether tunl0 is usable. */
export interface DataplaneInput extends Omit<CalcInput, 'tunnelUsable' | 'vxlan'> {
  /**
   * VXLAN (vxlan.ts): other nodes' blocks and VTEPs, this node's VTEP and FELIX_VXLANMTU. Absent: no
   * VXLAN routes (the device is still removed when no pool uses VXLAN).
   */
  vxlan?: Omit<CalcVxlan, 'usable'> & { local: { tunnelAddress?: string; mac?: string }; mtu?: number };
  /**
   * The BGP port guard (bgp-guard.ts: no pod reaches a node's port 179): every node's BGP address. Absent
   * or null: no guard table (TORTIE_BGP_PORT_GUARD=false), one we made is removed.
   */
  bgpGuard?: { nodeAddresses: readonly string[]; localPeers?: readonly string[] } | null;
  /** IPv6 pools, blocks, workloads and remote blocks (route-calc6.ts). Absent: no IPv6 pool. */
  ipv6?: CalcInput6;
  tunnel: {
    /** Node.spec.bgp.ipv4IPIPTunnelAddr; undefined = not allocated (yet). */
    address?: string;
    /** FELIX_IPINIPMTU. */
    mtu?: number;
    /** MTU of the host interface (tunl0 gets this − 20 unless `mtu`). */
    hostMtu?: number;
  };
}

export interface DataplaneStatus {
  /** tunl0: not needed (no IPIP pool), or its last status (supported, or why not). */
  tunl0:
    | { needed: false }
    | ({ needed: true } & (
        | { supported: true; standIn: boolean; mtu: number; addresses: readonly string[] }
        | { supported: false; reason: string }
      ));
  routes: {
    desired: number;
    programmed: number;
    waitingForInterface: number;
    foreignConflicts: number;
    retained: number;
  };
  /** Owned routes nobody wants are kept until BGP settles (restart safety). */
  retainingUnwanted: boolean;
  /** At least one apply succeeded: the kernel matches (readiness). */
  inSync: boolean;
  lastApplyAt: string | null;
  lastError?: string;
  /** natOutgoing: the pools masqueraded from, and the state of `table ip tortie-nat`. */
  nat: { table: string; managed: boolean; natPools: string[]; allPools: string[] } & NftTableStatus;
  /** The last kernel settings check (ip_forward, forwarding, rp_filter, proxy_arp); null before the first. */
  kernelSettings: { checkedAt: string | null; warnings: string[] };
  /** The calculation's current warnings and the reconciler's conflicts, for people. */
  warnings: string[];
  /** vxlan.calico, its remote VTEPs programmed; null when VXLAN is not managed here. */
  vxlan: VxlanStatus | null;
}
