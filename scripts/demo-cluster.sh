#!/usr/bin/env bash
# The quick start's main job: a three-node tortie cluster on this machine, on loopback addresses.
#   etcd            127.0.0.1:<free port>   the datastore (Debian etcd-server)
#   node-1..node-3  127.0.0.11..13          `tortie node run` each (AS 64512, node-to-node mesh)
#   office router   127.0.0.50              BIRD 2, AS 65001, a global BGPPeer of every node
# Resources go in with `tortie apply` (Calico v3 YAML); each node claims a /26 from 10.244.0.0/16 and
# advertises it; the script ends by showing `tortie node status`, `tortie node routes`, `tortie ipam show`
# and what the office router learned. The kernel is not touched (TORTIE_DATAPLANE=none): programming
# routes and the lab in network namespaces come with the felix and lab issues.
# Needs root (port 179, Debian packages). All traffic stays on 127.0.0.0/8. Stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
nodebin="$(bash scripts/node-runtime.sh)" # Node 24 in .tools/node24, first on PATH
export PATH="$nodebin:$PATH" npm_config_nodedir="${nodebin%/bin}"
bash scripts/npm-deps.sh
npm run --silent build

BIRD2_ROOT="${TORTIE_BIRD2_ROOT:-/opt/tortie/bird2}"
tortie() { node dist/src/cli/main.js "$@"; }
work="$(mktemp -d /tmp/tortie-cluster.XXXXXX)"
pids=()
cleanup() {
  # Only what this script started, by PID: the agents first (they send Cease), then BIRD and etcd.
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
client_port="$(free_port)" peer_port="$(free_port)"
etcd --name tortie-demo --data-dir "$work/etcd" \
  --listen-client-urls "http://127.0.0.1:$client_port" --advertise-client-urls "http://127.0.0.1:$client_port" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "tortie-demo=http://127.0.0.1:$peer_port" >"$work/etcd.log" 2>&1 &
pids+=($!)
export DATASTORE_TYPE=etcdv3 ETCD_ENDPOINTS="http://127.0.0.1:$client_port"
for _ in $(seq 1 100); do tortie get ippools >/dev/null 2>&1 && break; sleep 0.1; done

echo "== tortie apply: BGP configuration, an IP pool, the office router as a global BGPPeer"
tortie apply -f - <<'YAML'
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: { name: default }
spec:
  asNumber: 64512
  nodeToNodeMeshEnabled: true
  bindMode: NodeIP          # each node listens on its own address, so three fit on one machine
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: { name: pods }
spec: { cidr: 10.244.0.0/16, blockSize: 26, ipipMode: Never, natOutgoing: true }
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: { name: office-router }
spec: { peerIP: 127.0.0.50, asNumber: 65001 }
YAML

cat >"$work/bird.conf" <<'CONF'
router id 127.0.0.50;
protocol device { }
template bgp node {
  local 127.0.0.50 port 179 as 65001;
  strict bind yes;
  multihop;
  ipv4 { import all; export none; };
}
protocol bgp node_1 from node { neighbor 127.0.0.11 as 64512; }
protocol bgp node_2 from node { neighbor 127.0.0.12 as 64512; }
protocol bgp node_3 from node { neighbor 127.0.0.13 as 64512; }
CONF
"$BIRD2_ROOT/usr/sbin/bird" -f -c "$work/bird.conf" -s "$work/bird.ctl" -P "$work/bird.pid" >"$work/bird.log" 2>&1 &
pids+=($!)

echo "== starting node-1, node-2, node-3 (tortie node run)"
for n in 1 2 3; do
  NODENAME="node-$n" IP="127.0.0.1$n/8" NO_DEFAULT_POOLS=true TORTIE_DATAPLANE=none \
    TORTIE_CTL_SOCKET="$work/node-$n.ctl" TORTIE_HEALTH_PORT=0 TORTIE_LOG_LEVEL=warn \
    node dist/src/cli/main.js node run >"$work/node-$n.log" 2>&1 &
  pids+=($!)
done

echo "== waiting until every node has 3 sessions up and the office router has 3 blocks (at most 30 s)"
established() { TORTIE_CTL_SOCKET="$work/node-$1.ctl" tortie node status -o json 2>/dev/null | grep -oE '"bgpState": *"Established"' | wc -l; }
ok=0
for _ in $(seq 1 150); do
  if [ "$(established 1)" = 3 ] && [ "$(established 2)" = 3 ] && [ "$(established 3)" = 3 ] \
     && "$BIRD2_ROOT/usr/sbin/birdc" -s "$work/bird.ctl" show route count 2>/dev/null | grep -q 'for 3 networks'; then
    ok=1; break
  fi
  sleep 0.2
done

for n in 1 2 3; do
  echo; echo "== node-$n: tortie node status"
  TORTIE_CTL_SOCKET="$work/node-$n.ctl" tortie node status || true
done
echo; echo "== node-1: tortie node routes"
TORTIE_CTL_SOCKET="$work/node-1.ctl" tortie node routes || true
echo; echo "== tortie ipam show --show-blocks"
tortie ipam show --show-blocks || true
echo; echo "== office router (BIRD 2): birdc show route"
echo "   (each block arrives from all three nodes: each node passes the blocks it learned over iBGP on to"
echo "   its eBGP peer, as calico-node does; BIRD calls next hops in 127.0.0.0/8 unreachable because it"
echo "   never resolves loopback addresses — in the lab the nodes have 198.18.x addresses)"
"$BIRD2_ROOT/usr/sbin/birdc" -s "$work/bird.ctl" show route || true

if [ "$ok" = 1 ]; then
  echo; echo "cluster demo: OK — full mesh between three nodes, every block at the office router"
  exit 0
fi
echo; echo "cluster demo: FAILED — the sessions or routes did not come up; logs:"
tail -n 20 "$work"/node-*.log "$work/bird.log" || true
exit 1
