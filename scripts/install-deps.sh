#!/usr/bin/env bash
# Installs every system package tortie, its lab and its tests run, from Debian, idempotently:
#   bird (1.6, what Calico ships), bird2 (unpacked beside: it conflicts with bird as a package),
#   frr (bgpd, zebra, vtysh), gobgpd, exabgp, etcd-server, iproute2 (ip), nftables (nft), procps (sysctl,
#   pgrep), iputils-ping (the lab's ping matrix), tcpdump, openssl (the etcd TLS tests' certificates),
#   python3-minimal (the NetworkPolicy lab's listener).
# Every program the code and the tests start is in felix/programs.ts (tortie's own) or
# test/unit/programs.test.ts (the tests'), with its package; that test fails when a package is not in
# `want` below (or in Debian's base system). Safe to run again: it installs only what is missing.
# Needs root (CI and the lab run as root).
set -euo pipefail

BIRD2_ROOT="${TORTIE_BIRD2_ROOT:-/opt/tortie/bird2}"
# libssh-gcrypt-4 and libreadline8 are bird2's shared libraries (its package cannot be installed beside bird).
# gcc, libc6-dev: scripts/build-native.sh compiles tortie's one C file (TCP-MD5/GTSM socket options).
want=(bird frr gobgpd exabgp etcd-server iproute2 nftables tcpdump procps iputils-ping openssl python3-minimal libssh-gcrypt-4 libreadline8 containernetworking-plugins gcc libc6-dev)
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

export DEBIAN_FRONTEND=noninteractive
updated=0
apt_update() { if [ "$updated" = 0 ]; then apt-get update -qq; updated=1; fi; }

if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  apt_update
  # --no-install-recommends keeps the image small; frr must not start its daemons (no systemd here anyway).
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x "$BIRD2_ROOT/usr/sbin/bird" ]; then
  echo "install-deps: unpacking bird2 beside bird 1.6 into $BIRD2_ROOT"
  apt_update
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && apt-get download -qq bird2 >/dev/null)
  mkdir -p "$BIRD2_ROOT"
  dpkg-deb -x "$tmp"/bird2_*.deb "$BIRD2_ROOT"
fi

# Report what is there, one line each, so a CI log shows the versions the tests ran against.
"$BIRD2_ROOT/usr/sbin/bird" --version >/dev/null 2>&1 || { echo "install-deps: bird2 in $BIRD2_ROOT does not run:" >&2; "$BIRD2_ROOT/usr/sbin/bird" --version; exit 1; }
echo "install-deps: bird $(bird --version 2>&1 | awk '{print $NF}'), bird2 $("$BIRD2_ROOT/usr/sbin/bird" --version 2>&1 | awk '{print $NF}'), \
frr $(dpkg-query -W -f='${Version}' frr), gobgpd $(dpkg-query -W -f='${Version}' gobgpd), \
exabgp $(dpkg-query -W -f='${Version}' exabgp), etcd $(dpkg-query -W -f='${Version}' etcd-server)"
