// A pod's IPv6 address beside its IPv4 one (ipam.assign_ipv6 "true", ipam.ipv6_pools), as Calico's CNI
// plugin sets it up (cni-plugin/pkg/dataplane/linux/dataplane_linux.go):
//
//   host  ip route replace <ip6>/128 dev cali… scope link
//         accept_dad=0, disable_ipv6=0, proxy_ndp=1, forwarding=1, accept_ra=0   (/proc/sys/net/ipv6/conf/cali…/)
//   pod   ip addr add <ip6>/128 dev eth0 nodad
//         ip route add ::/0 via fe80::ecee:eeff:feee:eeee dev eth0
//         ip neigh replace fe80::ecee:eeff:feee:eeee lladdr ee:ee:ee:ee:ee:ee dev eth0 nud permanent
//
// The IPv6 gateway is the host end's own link-local address: the EUI-64 address of its fixed MAC
// ee:ee:ee:ee:ee:ee, which the kernel gives the host end when it comes up (Calico routes via it the same
// way). With DAD off on the host end (written before the pod end comes up, so before the link has carrier)
// that address is usable at once; the pod's address is added `nodad` for the same reason. The permanent
// neighbour entry spares the pod a Neighbour Solicitation, as the IPv4 side's does for 169.254.1.1.
//
// Why this is hard: the kernel refuses to send a Neighbour Solicitation from an interface whose only
// link-local address is still tentative (DAD takes a second or more), so a host end brought up with DAD
// on cannot reach its pod for that long; hence the order in dataplane.ts (sysctls before the pod side).

import { HOST_VETH_MAC } from './names.js';

/** The modified EUI-64 link-local address of a MAC (RFC 4291 appendix A): ee:ee:… → fe80::ecee:eeff:feee:eeee. */
export function macToIpv6LinkLocal(mac: string): string {
  const b = mac.split(':').map((h) => parseInt(h, 16));
  if (b.length !== 6 || b.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) {
    throw new Error(`"${mac}" is not a MAC address like ee:ee:ee:ee:ee:ee`);
  }
  const eui = [b[0]! ^ 0x02, b[1]!, b[2]!, 0xff, 0xfe, b[3]!, b[4]!, b[5]!];
  const groups = [0, 2, 4, 6].map((i) => ((eui[i]! << 8) | eui[i + 1]!).toString(16));
  return `fe80::${groups.join(':')}`;
}

/** The pods' IPv6 gateway: the host end's link-local address (Calico's hostSideMACAsIPv6LL). */
export const POD_GATEWAY_V6 = macToIpv6LinkLocal(HOST_VETH_MAC);

/** Host-side `ip -batch` lines for the pod's IPv6 address. */
export function hostSetupLines6(hostIf: string, address6: string): string[] {
  return [`route replace ${address6}/128 dev ${hostIf} scope link`];
}

/** Pod-side `ip -batch` lines for its IPv6 address and default route. */
export function podSetupLines6(podIf: string, address6: string): string[] {
  return [
    `addr add ${address6}/128 dev ${podIf} nodad`,
    `route add ::/0 via ${POD_GATEWAY_V6} dev ${podIf}`,
    `neigh replace ${POD_GATEWAY_V6} lladdr ${HOST_VETH_MAC} dev ${podIf} nud permanent`,
  ];
}

/** /proc/sys settings of the host end for IPv6 (Calico's configureSysctls, IPv6 part). */
export function hostSysctls6(hostIf: string): Array<{ path: string; value: string }> {
  const conf = `/proc/sys/net/ipv6/conf/${hostIf}`;
  return [
    // No duplicate address detection: the link-local gateway address is usable as soon as the link is.
    { path: `${conf}/accept_dad`, value: '0' },
    { path: `${conf}/disable_ipv6`, value: '0' },
    // Answer Neighbour Solicitations for addresses routed elsewhere (Calico sets it; the gateway is the
    // host end's own address, so pods do not depend on it).
    { path: `${conf}/proxy_ndp`, value: '1' },
    { path: `${conf}/forwarding`, value: '1' },
    // A host end must not configure itself from a router advertisement a pod sends.
    { path: `${conf}/accept_ra`, value: '0' },
  ];
}

/** The CNI result's IPv6 parts: the address (interface 1, the pod end) and the default route. */
export function resultParts6(address6: string): {
  ip: { address: string; interface: number };
  route: { dst: string; gw: string };
} {
  return { ip: { address: `${address6}/128`, interface: 1 }, route: { dst: '::/0', gw: POD_GATEWAY_V6 } };
}
