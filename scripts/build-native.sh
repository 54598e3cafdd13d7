#!/usr/bin/env bash
# Builds bgp/native/tcp-sockopt.c, tortie's one native part (TCP-MD5 and GTSM socket options, see
# bgp/socket-options.ts), into dist/bgp/native/tcp-sockopt.node. Run by `npm run build`.
#
# Plain `cc`, no node-gyp: one C file against the Node-API headers only, so the result is ABI-stable and
# loads on every Node version (20, 22, 24). Headers: the node-api-headers npm package (a devDependency),
# else the running Node's own include/node. Node-API symbols are resolved when Node loads the addon,
# hence no libraries to link. Needs a C compiler (Debian: gcc libc6-dev; scripts/install-deps.sh).
#
# Without a compiler it says so and exits 0: tortie still runs, and a BGP peer with a password or
# ttlSecurity is then refused loudly (node status, speaker events), never connected unsigned.
# TORTIE_NATIVE_REQUIRED=1 (the Dockerfile) or CI=true makes a failed build fail.
set -euo pipefail
cd "$(dirname "$0")/.."
src=bgp/native/tcp-sockopt.c
out=dist/bgp/native/tcp-sockopt.node
cc="${CC:-cc}"

fail() {
  echo "build-native: $*" >&2
  if [ "${TORTIE_NATIVE_REQUIRED:-}" = 1 ] || [ "${CI:-}" = true ]; then exit 1; fi
  echo "build-native: continuing without it: BGP passwords (TCP-MD5) and GTSM will be refused" >&2
  exit 0
}

include=""
for dir in node_modules/node-api-headers/include "$(dirname "$(dirname "$(command -v node)")")/include/node" /usr/include/node; do
  if [ -f "$dir/node_api.h" ]; then include="$dir"; break; fi
done
[ -n "$include" ] || fail "no Node-API headers (npm install node-api-headers, or a Node with include/node)"
command -v "$cc" >/dev/null 2>&1 || fail "no C compiler ($cc); Debian: apt-get install gcc libc6-dev"

if [ -f "$out" ] && [ "$out" -nt "$src" ] && [ "$out" -nt "$0" ]; then exit 0; fi
mkdir -p "$(dirname "$out")"
"$cc" -O2 -Wall -Wextra -Werror -fPIC -shared -fvisibility=hidden -I"$include" -o "$out.tmp" "$src" \
  || fail "$cc could not build $src"
mv "$out.tmp" "$out"
