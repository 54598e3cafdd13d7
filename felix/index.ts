// felix's front door (STYLE.md lesson 11): what src/ may use of felix/ — the dataplane the node agent runs,
// the policy dataplane, the kernel parts it wires, the one process runner and the workload interface name.
// src/ imports felix/ only through this file (test/unit/dependencies.test.ts), except the CNI plugin, which
// imports the few pure modules it needs by path: it runs as one process per pod ADD, and loading this
// index (the whole dataplane) costs it 125–175 ms instead of 50 ms.

export { runCommand, runCommandSync, startDetached } from './command.js';
export { FelixDataplane, type DataplaneInput, type DataplaneOptions, type DataplaneStatus } from './dataplane.js';
export { Iproute2Kernel } from './iproute2.js';
export { procSysIo } from './kernel-settings.js';
export { Nft } from './nft.js';
export {
  PolicyDataplane,
  type ApplyStats,
  type DesiredFilter,
  type FilterChain,
  type FilterSet,
} from './policy-dataplane.js';
export { findProgram, missingProgramMessage, missingPrograms } from './programs.js';
export { workloadInterfaceName } from './interface-names.js';
export { vxlanRunner, vxlanWatch } from './vxlan.js';
