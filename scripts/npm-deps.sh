#!/usr/bin/env bash
# Installs the npm dependencies when node_modules is missing or older than package-lock.json.
# `npm ci` first; npm 11 as set up on these machines leaves other platforms' optional packages (rollup's
# @rollup/rollup-<os>-<cpu>) out of the lockfile and then refuses it in `npm ci` (EUSAGE, before touching
# anything), so that case falls back to `npm install`, saying so.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -d node_modules ] && [ ! package-lock.json -nt node_modules/.package-lock.json ]; then exit 0; fi
if ! npm ci --no-audit --no-fund 2>/tmp/tortie-npm-ci.$$.log; then
  if grep -q "EUSAGE" /tmp/tortie-npm-ci.$$.log; then
    echo "npm-deps: npm ci refused the lockfile (other platforms' optional packages are not in it); running npm install" >&2
    npm install --no-audit --no-fund
  else
    cat /tmp/tortie-npm-ci.$$.log >&2
    rm -f /tmp/tortie-npm-ci.$$.log
    exit 1
  fi
fi
rm -f /tmp/tortie-npm-ci.$$.log
