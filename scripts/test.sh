#!/usr/bin/env bash
# Runs every test tortie has, on a fresh machine: installs system packages (Debian) and npm packages,
# lints, typechecks, builds, then runs unit and integration tests (real BIRD, FRR, GoBGP, etcd; root).
# Usage: scripts/test.sh [vitest filter...]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
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
