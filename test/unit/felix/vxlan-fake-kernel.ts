// An in-memory stand-in for `ip` / `bridge` on vxlan.calico (felix/vxlan.ts VxlanRunner): answers the three
// reads with JSON shaped as iproute2 6.1 prints it, applies exactly the batch lines planVxlan writes, and
// can be told to fail the next batch. For unit tests of the keeper, the dataplane and the agent.

import type { VxlanObserved, VxlanRunner } from '../../../felix/vxlan.js';

/** A kernel holding one VXLAN state, answering the three reads and applying the batch lines the plan writes. */
export class FakeVxlanKernel {
  state: VxlanObserved = { device: null, neighbours: [], fdb: [] };
  batches: string[] = [];
  failNext = false;
  run: VxlanRunner = (tool, args, stdin) => {
    if (args.includes('-batch')) {
      this.batches.push(`${tool}: ${stdin ?? ''}`);
      if (this.failNext) {
        this.failNext = false;
        return Promise.resolve({ code: 1, stdout: '', stderr: 'RTNETLINK answers: Operation not permitted' });
      }
      for (const line of (stdin ?? '').split('\n').filter(Boolean)) this.apply(tool, line.split(' '));
      return Promise.resolve({ code: 0, stdout: '', stderr: '' });
    }
    const d = this.state.device;
    if (args[2] === 'addr') {
      if (d === null) return Promise.resolve({ code: 1, stdout: '', stderr: 'Device "vxlan.calico" does not exist.' });
      const link = {
        mtu: d.mtu,
        address: d.mac,
        flags: d.up ? ['UP'] : [],
        linkinfo: { info_kind: d.kind, info_data: { id: d.vni, port: d.port, local: d.local, learning: d.learning } },
        addr_info: d.addresses.map((a) => ({
          family: 'inet',
          local: a.split('/')[0],
          prefixlen: Number(a.split('/')[1]),
        })),
      };
      return Promise.resolve({ code: 0, stdout: JSON.stringify([link]), stderr: '' });
    }
    if (args[1] === 'neigh') {
      return Promise.resolve({
        code: 0,
        stdout: JSON.stringify(
          this.state.neighbours.map((n) => ({
            dst: n.ip,
            lladdr: n.mac,
            state: n.permanent ? ['PERMANENT'] : ['STALE'],
            ...(n.protocol !== null ? { protocol: String(n.protocol) } : {}),
          })),
        ),
        stderr: '',
      });
    }
    return Promise.resolve({
      code: 0,
      stdout: JSON.stringify(
        this.state.fdb.map((f) => ({ mac: f.mac, dst: f.dst, state: f.permanent ? 'permanent' : '' })),
      ),
      stderr: '',
    });
  };
  private apply(tool: string, w: string[]): void {
    const s = this.state;
    const at = (word: string): string => w[w.indexOf(word) + 1]!;
    if (tool === 'bridge') {
      s.fdb = s.fdb.filter((f) => f.mac !== w[2]);
      if (w[1] === 'replace') s.fdb.push({ mac: w[2]!, dst: at('dst'), permanent: true });
      return;
    }
    const verb = `${w[0]} ${w[1]}`;
    if (verb === 'link add')
      s.device = {
        kind: 'vxlan',
        vni: Number(at('id')),
        port: Number(at('dstport')),
        local: at('local'),
        learning: false,
        mtu: Number(at('mtu')),
        mac: at('address'),
        up: false,
        addresses: [],
      };
    else if (verb === 'link del') s.device = null;
    else if (verb === 'link set' && w.includes('up')) s.device!.up = true;
    else if (verb === 'link set' && w.includes('mtu')) s.device!.mtu = Number(at('mtu'));
    else if (verb === 'link set' && w.includes('address')) s.device!.mac = at('address');
    else if (verb === 'addr add') s.device!.addresses.push(w[2]!);
    else if (verb === 'addr del') s.device!.addresses = s.device!.addresses.filter((a) => a !== w[2]);
    else if (verb === 'neigh replace')
      s.neighbours = [
        ...s.neighbours.filter((n) => n.ip !== w[2]),
        { ip: w[2]!, mac: at('lladdr'), permanent: true, protocol: 80 },
      ];
    else if (verb === 'neigh del') s.neighbours = s.neighbours.filter((n) => n.ip !== w[2]);
    else throw new Error(`fake kernel: unknown line ${w.join(' ')}`);
    if (s.device === null) {
      s.neighbours = [];
      s.fdb = [];
    }
  }
}
