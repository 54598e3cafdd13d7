// Neighbour and FDB changes on vxlan.calico, as they happen: one long-running `ip -o monitor neigh` (tied to
// the agent: monitor-child.ts), so an entry deleted or changed by hand is re-checked at once instead of at
// the next resync. The keeper then compares everything (vxlan-keeper.ts) and writes only what is ours and
// differs: foreign entries are never touched, and an event about them costs one look, no write.
//
// What `ip -o monitor neigh` prints (iproute2 6.1, checked on this machine): one line per change, for
// neighbour entries and FDB entries alike (RTM_NEWNEIGH/RTM_DELNEIGH of both families share the group):
//   10.244.1.1 dev vxlan.calico lladdr 66:aa:bb:cc:dd:02 PERMANENT proto 80
//   198.19.1.12 dev vxlan.calico lladdr 66:aa:bb:cc:dd:02 NOARP PERMANENT      (an FDB entry: MAC → dst)
//   Deleted 10.244.1.1 dev vxlan.calico FAILED proto 80
// Only the device matters here: every change on vxlan.calico means "look again".

import { spawnMonitor, stopMonitor } from './monitor-child.js';
import { VXLAN_DEVICE } from './vxlan-desired.js';

/** One line of `ip -o monitor neigh`, reduced to what felix acts on; null for lines without a device. */
export interface NeighEvent {
  dev: string;
  deleted: boolean;
}

export function parseNeighMonitorLine(line: string): NeighEvent | null {
  const words = line.trim().split(/\s+/);
  const at = words.indexOf('dev');
  const dev = at >= 0 ? words[at + 1] : undefined;
  if (dev === undefined || dev === '') return null;
  return { dev, deleted: words[0] === 'Deleted' };
}

/** Starts watching: `onChange` for every neighbour/FDB change on vxlan.calico, `onLost` once if the monitor ends. */
export type VxlanWatch = (onChange: () => void, onLost: (reason: string) => void) => { stop(): void };

/** The real watch: `ip [-n netns] -o monitor neigh`. */
export function vxlanWatch(options: { netns?: string; ip?: string } = {}): VxlanWatch {
  const prefix = options.netns !== undefined ? ['-n', options.netns] : [];
  return (onChange, onLost) => {
    const child = spawnMonitor(options.ip ?? 'ip', [...prefix, '-o', 'monitor', 'neigh']);
    let stopped = false;
    let pending = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      pending += chunk;
      let nl = pending.indexOf('\n');
      while (nl >= 0) {
        const event = parseNeighMonitorLine(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
        if (event?.dev === VXLAN_DEVICE && !stopped) onChange();
        nl = pending.indexOf('\n');
      }
    });
    let why = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => (why = (why + chunk).slice(-300)));
    const lost = (reason: string): void => {
      if (stopped) return;
      stopped = true;
      onLost(reason);
    };
    child.on('error', (err) => lost(`ip monitor neigh could not run: ${err.message}`));
    child.on('close', (code, signal) =>
      lost(`ip monitor neigh exited (${code ?? signal})${why ? `: ${why.trim()}` : ''}`),
    );
    return {
      stop: () => {
        stopped = true;
        stopMonitor(child);
      },
    };
  };
}

/**
 * The dataplane's use of a VxlanWatch: started once VXLAN is in use (and again after it was lost: on the next
 * check, at the latest the resync), events within `debounceMs` folded into one `onDrift`, a lost monitor
 * logged once per reason (the resync still repairs meanwhile).
 */
export class VxlanDriftWatch {
  private handle: { stop(): void } | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private lostReason: string | null = null;
  private stopped = false;

  constructor(
    private readonly watch: VxlanWatch,
    private readonly onDrift: () => void,
    private readonly log: { warn(fields: Record<string, unknown>, message: string): void },
    private readonly debounceMs = 20,
  ) {}

  /** Starts the monitor unless it runs. */
  ensure(): void {
    if (this.stopped || this.handle !== null) return;
    let lostAtOnce = false;
    const handle = this.watch(
      () => this.changed(),
      (reason) => {
        lostAtOnce = true;
        this.handle = null;
        if (reason !== this.lostReason)
          this.log.warn(
            { reason },
            `${VXLAN_DEVICE}: neighbour/FDB monitor lost; drift is repaired on the next resync`,
          );
        this.lostReason = reason;
      },
    );
    if (!lostAtOnce) this.handle = handle;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.handle?.stop();
    this.handle = null;
  }

  private changed(): void {
    if (this.timer !== null || this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      if (!this.stopped) this.onDrift();
    }, this.debounceMs);
    this.timer.unref?.();
  }
}
