# The tortie image: the `tortie` command on Node.js 24 (LTS), with iproute2 (the agent programs routes and tunl0
# with `ip`) and nftables. The DaemonSets in manifests/ run it as `tortie node run` (the agent) and
# `tortie cni install` (the CNI plugin's installer, an init container).
#
# Build from a built tree (the image holds the compiled JavaScript, not the TypeScript):
#   npm run build
#   docker build -t REGISTRY/tortie:0.1.0 .
#   docker push REGISTRY/tortie:0.1.0
# then set `image:` in manifests/tortie.yaml (or tortie-etcd.yaml) to REGISTRY/tortie:0.1.0.
#
# Run by hand: docker run --rm REGISTRY/tortie:0.1.0 version
#              docker run --rm --net=host --privileged -e NODENAME=... REGISTRY/tortie:0.1.0   (the agent)
#
# test/unit/manifests.test.ts checks this file against the package: the ENTRYPOINT is package.json's `bin`,
# every module the CLI can load is in a directory copied here, and every package it imports is a
# production dependency (npm ci --omit=dev installs nothing else).

# The base, pinned to one Node release (the same as scripts/node-runtime.sh installs for the tests;
# test/unit/runtime.test.ts checks that they agree). To pin it by digest as well, look the tag's digest up
# and append it, e.g. node:24.22.3-bookworm-slim@sha256:<64 hex>:
#   docker buildx imagetools inspect node:24.22.3-bookworm-slim --format '{{json .Manifest.Digest}}'
# Bump: a new 24.x in scripts/node-runtime.sh and here (a new digest too), then rebuild. README.md,
# "Runtime and dependencies", says more. Another base for one build: --build-arg NODE_IMAGE=...
ARG NODE_IMAGE=node:24.22.3-bookworm-slim

# The native part (TCP-MD5 and GTSM socket options, bgp/native/tcp-sockopt.c) is compiled here, for the
# architecture the image is built for (amd64, arm64): one C file against Node-API, no node-gyp.
FROM ${NODE_IMAGE} AS native
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /build
COPY bgp/native/tcp-sockopt.c bgp/native/
COPY scripts/build-native.sh scripts/
RUN TORTIE_NATIVE_REQUIRED=1 bash scripts/build-native.sh

FROM ${NODE_IMAGE}

# iproute2: `ip route`, `ip link` (tunl0, cali* interfaces); nftables: `nft`. Nothing else from apt.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2 nftables \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /usr/lib/tortie

# Dependencies first, so a change of tortie's code alone reuses this layer. Production ones only.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund \
 && npm cache clean --force

# The compiled code: the CLI and agent (src), and the libraries they import (bgp, felix, ipip).
COPY dist/src ./dist/src
COPY dist/bgp ./dist/bgp
COPY dist/felix ./dist/felix
COPY dist/ipip ./dist/ipip
# After dist/bgp: this image's own build of the addon, not the one from the build machine.
COPY --from=native /build/dist/bgp/native ./dist/bgp/native

# `tortie` on PATH: package.json's bin (dist/src/cli/main.js, `#!/usr/bin/env node`).
RUN chmod 0755 dist/src/cli/main.js \
 && ln -s /usr/lib/tortie/dist/src/cli/main.js /usr/local/bin/tortie

ENV NODE_ENV=production

ENTRYPOINT ["tortie"]
CMD ["node", "run"]
