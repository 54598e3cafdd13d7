#!/usr/bin/env bash
# Runs every test tortie has, on a fresh machine: installs system packages (Debian), tortie's Node.js
# (Node 24, into .tools/node24, first on PATH from here on: scripts/node-runtime.sh) and npm packages,
# lints, typechecks, builds, then runs unit and integration tests (real BIRD, FRR, GoBGP, etcd; root).
# Usage: scripts/test.sh [vitest filter...]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
nodebin="$(bash scripts/node-runtime.sh)"
# node-gyp (an addon built by npm) takes the headers of this Node, not the machine's (npmrc: nodedir=/usr).
export PATH="$nodebin:$PATH" npm_config_nodedir="${nodebin%/bin}"
# test/unit/runtime.test.ts fails unless the tests run on this major version.
export TORTIE_EXPECT_NODE_MAJOR=24
echo "test: node $(node --version), npm $(npm --version)"
bash scripts/npm-deps.sh
npm run --silent lint
npm run --silent build

results="$(mktemp -d)/vitest.json"
status=0
npx vitest run --reporter=default --reporter=json --outputFile="$results" "$@" || status=$?

# One plain closing line, the same whatever the runner prints above it.
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const skipped = r.numPendingTests + r.numTodoTests;
  console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
' "$results" || true
exit "$status"
