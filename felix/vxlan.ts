// The VXLAN dataplane outside the routing table, as Calico's felix sets it up: the device `vxlan.calico`
// (VNI 4096, UDP 4789, local = this node's address, learning off, the node's tunnel address and MAC, MTU
// host − 50 or FELIX_VXLANMTU), and for every remote node with a VTEP (Node.spec.ipv4VXLANTunnelAddr and
// vxlanTunnelMACAddr) one permanent neighbour entry (its tunnel address → its MAC on vxlan.calico) and
// one permanent FDB entry (its MAC → its node address). The routes through the device
// (`<block> via <tunnel address> dev vxlan.calico onlink`) are the route table's (route-calc.ts).
//
//   vxlan-desired.ts   desiredVxlan(input), vxlanInputFor: pure, the device, neighbours and FDB entries wanted
//   vxlan-observed.ts  parse*(stdout): pure, `ip -d -j addr`, `ip -j neigh`, `bridge -j fdb` as they print here
//   vxlan-plan.ts      planVxlan(observed, want): pure, the steps that close the difference, the conflicts left
//   vxlan-keeper.ts    VxlanKeeper: observe (3 reads) → plan → one `ip -batch` and one `bridge -batch` → observe
//   vxlan-watch.ts     `ip -o monitor neigh`: a neighbour or FDB change on vxlan.calico is re-checked at once
// This file is the VXLAN part's front door: the rest of felix imports it from here.
//
// Ownership (what "never touch foreign entries" means here):
// - The device is ours by name when it is a vxlan device; a vxlan.calico of another kind is refused and
//   reported (never deleted). A vxlan.calico with another VNI, port, local address or learning is made
//   again (those cannot be changed in place). With no VXLAN pool it is deleted (felix does the same).
// - A neighbour entry on vxlan.calico is ours when it is PERMANENT with protocol 80 (felix's number, as
//   on routes: `ip neigh ... protocol 80`). Entries the kernel made (INCOMPLETE, FAILED, STALE...) are
//   replaced when we want their address; a permanent entry of another protocol for an address we want is
//   a conflict: reported, left as it is.
// - An FDB entry on vxlan.calico is ours when its MAC is one we want, the MAC of one of our neighbour
//   entries, or one this process wanted before (the kernel keeps no protocol on FDB entries); anything
//   else (the all-zero flood entry someone added, entries for other MACs) is left alone.
// - Every IPv4 address on vxlan.calico other than the tunnel address is removed (the device is dedicated,
//   like tunl0: ipip/tunl0.ts).
//
// Why this is hard: a restart must not rewrite anything (the entries survive the agent; rewriting the
// neighbour of a remote VTEP while traffic flows costs packets), so every comparison is on normal forms
// (lower-case MACs, dotted quads) and an equal observation plans nothing. Programming is one `ip -batch
// -force` and one `bridge -batch -force` (the lines that fail do not stop the rest); the result is
// observed again, and what is still different is reported, not assumed done.

export * from './vxlan-desired.js';
export * from './vxlan-observed.js';
export * from './vxlan-plan.js';
export * from './vxlan-keeper.js';
export * from './vxlan-watch.js';
