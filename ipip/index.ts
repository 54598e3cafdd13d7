// ipip's front door (STYLE.md lesson 11): the IPIP mode rules and the tunl0 keeper, as felix/ uses them.
// src/ uses nothing of ipip/ today; when it does, it imports through this file
// (test/unit/dependencies.test.ts).

export {
  IPIP_DEVICE,
  IPIP_MODES,
  isIpipMode,
  subnetOf,
  subnetRelation,
  type IpipMode,
  type NodeSubnet,
} from './encap.js';
export { Tunl0Keeper, type IpCommand, type Tunl0Deps, type Tunl0Options, type Tunl0Status } from './tunl0.js';
