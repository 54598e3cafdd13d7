#!/usr/bin/env bash
# `npm run test:kernel`: tortie's kernel-level checks (test/kernel/ipip-checks.ts: real IPIP through tunl0
# with the real agents, etcd and CNI plugin, in labs the lab code builds) in ONE run of the VM
# (scripts/vm/run), because this machine's kernel has no IPIP. Prints a PASS/FAIL line per check with its
# numbers; the exit status is the checks' (0 = all passed; 124 = the VM ran out of time; 125 = no VM).
# Expects a build (npm run build: the npm script does it first). Needs root.
#   TORTIE_KERNEL_ONLY=always|crosssubnet   one lab only
#   TORTIE_KERNEL_SWITCH=1                    also the live IPIP/VXLAN switch (crosssubnet/switch; opt-in, README.md)
#   TORTIE_LAB_SLOWDOWN (default 10): the labs' deadlines × this (software emulation is slow, and slower
#                                    still on a busy machine); it stretches deadlines only, never a measurement
#   VM_TIMEOUT (default 2400 s), VM_MEM (default 2048 MiB), see scripts/vm/run for the rest.
set -euo pipefail
cd "$(dirname "$0")/../.."
checks=dist/test/kernel/ipip-checks.js
[ -f "$checks" ] || { echo "test-kernel: $checks is missing: npm run build first" >&2; exit 1; }
# The labs run this machine's etcd inside the VM.
if [ ! -x /usr/bin/etcd ]; then
  echo "test-kernel: installing etcd-server (Debian)" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends etcd-server) >&2
fi
# The checks, and the agents and CNI plugin they start (process.execPath), run on tortie's Node 24: the VM's
# root is this machine's /, so .tools/node24 is there at the same path.
node="$(bash scripts/node-runtime.sh)/node"
begun=$(date +%s.%N)
status=0
export TORTIE_LAB_SLOWDOWN=${TORTIE_LAB_SLOWDOWN:-10}
VM_TIMEOUT=${VM_TIMEOUT:-2400} VM_MEM=${VM_MEM:-2048} scripts/vm/run -e TORTIE_KERNEL_ONLY -e TORTIE_KERNEL_SWITCH -e TORTIE_LOG_LEVEL -e TORTIE_LAB_SLOWDOWN "$node $checks" || status=$?
awk -v b="$begun" -v e="$(date +%s.%N)" -v s="$status" 'BEGIN { printf "test-kernel: VM run %.1f s wall, exit %d\n", e - b, s }'
exit "$status"
