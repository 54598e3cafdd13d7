#!/usr/bin/env bash
# The quick-start demo: tortie's BGP speaker peers with a real BIRD 2 router on loopback, routes flow
# both ways, and each side shows what it learned. Installs what it needs; stops what it started.
#   tortie  127.0.0.9  AS 64512  announces 10.244.1.0/26 and 10.244.1.64/26 (next hop 198.18.0.9)
#   BIRD 2  127.0.0.2  AS 65001  announces 10.2.0.0/24                     (next hop 198.18.0.2)
# Needs root (port 179, Debian packages). Traffic stays on 127.0.0.0/8.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
nodebin="$(bash scripts/node-runtime.sh)" # Node 24 in .tools/node24, first on PATH
export PATH="$nodebin:$PATH" npm_config_nodedir="${nodebin%/bin}"
bash scripts/npm-deps.sh
npm run --silent build

BIRD2_ROOT="${TORTIE_BIRD2_ROOT:-/opt/tortie/bird2}"
work="$(mktemp -d /tmp/tortie-demo.XXXXXX)"
bird_pid="" tortie_pid=""
cleanup_processes() {
  # Only what this script started, by PID: tortie first (it sends Cease), then BIRD.
  if [ -n "$tortie_pid" ]; then kill "$tortie_pid" 2>/dev/null || true; wait "$tortie_pid" 2>/dev/null || true; fi
  if [ -n "$bird_pid" ]; then kill "$bird_pid" 2>/dev/null || true; wait "$bird_pid" 2>/dev/null || true; fi
  exec 3>&- 2>/dev/null || true
}
cleanup() { cleanup_processes; rm -rf "$work"; }
trap cleanup EXIT INT TERM

cat > "$work/bird.conf" <<CONF
router id 127.0.0.2;
protocol device { }
# BIRD's own route, announced to tortie with next hop 198.18.0.2 (set by the export filter below).
protocol static demo_routes { ipv4; route 10.2.0.0/24 blackhole; }
# The next hops tortie announces (198.18.0.0/15) must resolve for BIRD to call the routes reachable.
protocol static underlay { ipv4; route 198.18.0.0/15 blackhole; }
protocol bgp tortie {
  # strict bind: listen on 127.0.0.2:179 only, not on every address (tortie listens on 127.0.0.9:179).
  local 127.0.0.2 port 179 as 65001;
  strict bind yes;
  neighbor 127.0.0.9 as 64512;
  multihop;
  hold time 9;
  ipv4 {
    import all;
    export filter { if proto = "demo_routes" then { bgp_next_hop = 198.18.0.2; accept; } reject; };
  };
}
CONF
"$BIRD2_ROOT/usr/sbin/bird" -c "$work/bird.conf" -s "$work/bird.ctl" -P "$work/bird.pid" -f >"$work/bird.log" 2>&1 &
bird_pid=$!

mkfifo "$work/tortie.in"
node dist/src/cli/main.js bgp speaker --router-id 127.0.0.9 --as 64512 --hold 9 \
  --peer 127.0.0.2,as=65001 \
  --announce 10.244.1.0/26,nexthop=198.18.0.9 --announce 10.244.1.64/26,nexthop=198.18.0.9 \
  --stdin <"$work/tortie.in" >"$work/tortie.out" 2>"$work/tortie.log" &
tortie_pid=$!
exec 3>"$work/tortie.in"   # keep the speaker's stdin open

echo "== waiting for the session and routes (at most 20 s)"
for _ in $(seq 1 100); do
  if "$BIRD2_ROOT/usr/sbin/birdc" -s "$work/bird.ctl" show route protocol tortie 2>/dev/null | grep -q 10.244.1.64/26 \
     && grep -q "10.2.0.0/24" "$work/tortie.out"; then break; fi
  sleep 0.2
done

echo; echo "== tortie's events (what BIRD sent, session states)"
cat "$work/tortie.out"

echo; echo "== BIRD 2: birdc show protocols tortie"
"$BIRD2_ROOT/usr/sbin/birdc" -s "$work/bird.ctl" show protocols tortie
echo; echo "== BIRD 2: birdc show route protocol tortie all (what tortie announced)"
"$BIRD2_ROOT/usr/sbin/birdc" -s "$work/bird.ctl" show route protocol tortie all

echo; echo "== tortie withdraws 10.244.1.64/26 (a command on its standard input)"
echo "withdraw 10.244.1.64/26" >&3
for _ in $(seq 1 50); do
  "$BIRD2_ROOT/usr/sbin/birdc" -s "$work/bird.ctl" show route protocol tortie | grep -q 10.244.1.64/26 || break
  sleep 0.1
done
"$BIRD2_ROOT/usr/sbin/birdc" -s "$work/bird.ctl" show route protocol tortie
if grep -q "10.2.0.0/24" "$work/tortie.out" \
   && "$BIRD2_ROOT/usr/sbin/birdc" -s "$work/bird.ctl" show route protocol tortie | grep -q 10.244.1.0/26; then
  echo; echo "demo: OK — routes flowed both ways"
  exit 0
fi
echo "demo: FAILED — logs kept in $work"
trap - EXIT
cleanup_processes
exit 1
