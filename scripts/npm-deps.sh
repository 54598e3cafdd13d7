#!/usr/bin/env bash
# Installs the npm dependencies exactly as package-lock.json records them, with `npm ci` and nothing else.
# The lockfile carries every platform's optional packages (rollup's @rollup/rollup-<os>-<cpu>, esbuild's
# @esbuild/<os>-<cpu>), so this works from a clean clone on the first try; test/unit/runtime.test.ts
# (`npm ci --dry-run` against the committed files) keeps it so. Regenerate the lockfile after a change of
# package.json with `npm install` on tortie's Node (scripts/node-runtime.sh), never by hand.
# Skipped when node_modules holds what this script installed from the same package.json and
# package-lock.json for the same Node ABI (node_modules/.tortie-lock-hash), so a repeated run costs nothing;
# npm ci removes node_modules first, so a stale or foreign node_modules is replaced whole.
set -euo pipefail
cd "$(dirname "$0")/.."
want="$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1) node-abi-$(node -p process.versions.modules)"
stamp=node_modules/.tortie-lock-hash
if [ -f "$stamp" ] && [ "$(<"$stamp")" = "$want" ]; then exit 0; fi
echo "npm-deps: npm ci (node $(node --version))" >&2
npm ci --no-audit --no-fund
echo "$want" >"$stamp"
