#!/usr/bin/env bash
# The quick start's main job: `tortie lab up` — a tortie cluster in network namespaces on this machine.
# Installs what it needs (Debian packages, npm packages), builds, takes down a lab of the same name left
# from an earlier run, then brings one up and ends by printing `tortie node status` of every node, the
# routes felix programmed, the office router's table, and the full ping matrix between workloads.
# The lab stays up afterwards: scripts/tortie lab status | ping | down.
# Options are `tortie lab up`'s, e.g.  scripts/lab.sh --nodes 4 --subnets 2 --office-router bird
# Default here: 3 nodes in a node-to-node mesh and a BIRD 2 office router (AS 65001) on the bridge.
# Needs root. All traffic stays inside the lab's namespaces (198.19.0.0/16) and on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
nodebin="$(bash scripts/node-runtime.sh)" # Node 24 in .tools/node24, first on PATH (the agents run on it too)
export PATH="$nodebin:$PATH" npm_config_nodedir="${nodebin%/bin}"
bash scripts/npm-deps.sh
npm run --silent build

args=("$@")
[ ${#args[@]} -eq 0 ] && args=(--nodes 3 --office-router bird)
name=tlab
for ((i = 0; i < ${#args[@]}; i++)); do [ "${args[$i]}" = --name ] && name="${args[$((i + 1))]}"; done
node dist/src/cli/main.js lab down --name "$name" >/dev/null
exec node dist/src/cli/main.js lab up "${args[@]}"
