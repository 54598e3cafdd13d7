// "Which source address did the packet arrive with?" — for natOutgoing tests. A UDP listener inside a
// network namespace prints "<tag> <source address>" for every datagram and answers with that address;
// a sender inside another namespace sends one tagged datagram and reports the answer (or none).
//
//   const l = new UdpListener('tortie-test-1-out', '198.18.66.2', 7070); await l.ready;
//   const { tag, answer } = await udpSend('tortie-test-1-pod', '198.18.66.2', 7070);
//   expect(await l.sourceOf(tag)).toBe('198.18.66.1');   // masqueraded to the node's address
//   l.stop();
//
// UDP on purpose: a datagram is seen by the listener even when no answer can come back (a pod address
// the far side has no route to), so "not masqueraded" is observable, not just a timeout. Each process
// runs under `ip netns exec` with the test's own Node; every wait is bounded and the listener exits by
// itself after two minutes if nobody stops it (killed by its PID otherwise).

import { spawn, type ChildProcess } from 'node:child_process';
import { runCommand } from './netns.js';
import { waitFor } from './wait.js';

export class UdpListener {
  readonly seen: string[] = [];
  readonly ready: Promise<void>;
  private readonly child: ChildProcess;
  private buffer = '';

  constructor(netns: string, address: string, port: number) {
    const script = `
      const s = require('node:dgram').createSocket('udp4');
      s.on('message', (m, r) => { process.stdout.write(m.toString() + ' ' + r.address + '\\n'); s.send(r.address, r.port, r.address); });
      s.bind(${port}, ${JSON.stringify(address)}, () => process.stdout.write('ready\\n'));
      setTimeout(() => process.exit(0), 120000);`;
    this.child = spawn('ip', ['netns', 'exec', netns, process.execPath, '-e', script], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.ready = new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`UDP listener on ${address}:${port} in ${netns} did not start in 10 s`)),
        10_000,
      );
      this.child.stdout?.on('data', (b: Buffer) => {
        this.buffer += b.toString();
        const lines = this.buffer.split('\n');
        this.buffer = lines.pop() ?? '';
        for (const line of lines) {
          if (line === 'ready') {
            clearTimeout(timer);
            resolve();
          } else this.seen.push(line);
        }
      });
      this.child.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`UDP listener on ${address}:${port} in ${netns} exited (${code})`));
      });
    });
    this.ready.catch(() => undefined);
  }

  /** The source address of the datagram tagged `tag`, or null if none arrived within `ms`. */
  async sourceOf(tag: string, ms = 3_000): Promise<string | null> {
    try {
      const line = await waitFor(() => this.seen.find((l) => l.startsWith(`${tag} `)), {
        what: `datagram ${tag}`,
        timeoutMs: ms,
        intervalMs: 20,
      });
      return line.slice(tag.length + 1);
    } catch {
      return null; // none arrived within `ms`: that is the answer the caller asserts on (a path that is blocked)
    }
  }

  stop(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
  }
}

let tags = 0;

/** Sends one tagged datagram from inside `netns`; the answer is the source the listener saw, or null (1.5 s). */
export async function udpSend(
  netns: string,
  to: string,
  port: number,
): Promise<{ tag: string; answer: string | null }> {
  const tag = `t${process.pid}-${++tags}`;
  const script = `
    const s = require('node:dgram').createSocket('udp4');
    const t = setTimeout(() => { process.stdout.write('timeout'); process.exit(0); }, 1500);
    s.on('message', (m) => { process.stdout.write('answer ' + m.toString()); clearTimeout(t); process.exit(0); });
    s.send(${JSON.stringify(tag)}, ${port}, ${JSON.stringify(to)});`;
  const result = await runCommand('ip', ['netns', 'exec', netns, process.execPath, '-e', script], undefined, 10_000);
  const answer = result.stdout.startsWith('answer ') ? result.stdout.slice('answer '.length).trim() : null;
  return { tag, answer };
}
