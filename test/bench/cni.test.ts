// The pure parts of the `cni` bench (test/bench/cni.ts): nearest-rank percentiles, reading the plugin's
// step timings from its debug log, counting etcd's calls from its /metrics and the processes started.

import { describe, expect, it } from 'vitest';
import { etcdCalls, percentile, processesOf, stepTimings } from './cni.js';

describe('bench cni', () => {
  it('takes nearest-rank percentiles', () => {
    const values = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1, unsorted
    expect(percentile(values, 50)).toBe(50);
    expect(percentile(values, 99)).toBe(99);
    expect(percentile(values, 100)).toBe(100);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 50)).toBeNaN();
  });

  it("reads the ADD steps from the plugin's debug line, ignoring other lines and pid", () => {
    const stderr = [
      '{"level":"info","msg":"ADD done","ms":400}',
      '{"time":"2026-11-22T16:24:08.250Z","level":"debug","plugin":"tortie","pid":9404,"msg":"ADD timings (ms)","datastore":301.4,"ipam":44.9,"dataplane":14.3}',
    ].join('\n');
    expect(stepTimings(stderr)).toEqual({ datastore: 301.4, ipam: 44.9, dataplane: 14.3 });
    expect(stepTimings('nothing here')).toEqual({});
  });

  it("counts etcd's calls by method from its /metrics, over every code and service", () => {
    const metrics = [
      '# HELP grpc_server_handled_total Total number of RPCs completed on the server, regardless of success or failure.',
      '# TYPE grpc_server_handled_total counter',
      'grpc_server_handled_total{grpc_code="OK",grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 14',
      'grpc_server_handled_total{grpc_code="OK",grpc_method="Txn",grpc_service="etcdserverpb.KV",grpc_type="unary"} 6',
      'grpc_server_handled_total{grpc_code="Unavailable",grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 2',
      'grpc_server_handled_total{grpc_code="OK",grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"} 0',
      'grpc_server_started_total{grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 99',
    ].join('\n');
    expect(etcdCalls(metrics)).toEqual({ Range: 16, Txn: 6, Watch: 0 });
    expect(etcdCalls('')).toEqual({});
  });

  it('counts processes by PID: nsenter and what it execs are one, concurrent ones stay apart', () => {
    const log = ['101 nsenter', '101 ip', '102 nsenter', '103 nsenter', '103 ip', '102 sysctl', '104 ip', ''].join(
      '\n',
    );
    expect(processesOf(log)).toEqual(['nsenter → ip', 'nsenter → sysctl', 'nsenter → ip', 'ip']);
    expect(processesOf('')).toEqual([]);
  });
});
