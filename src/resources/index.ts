// The resources module's public face: parse YAML/JSON into Calico v3 resources, apply Calico's defaults,
// validate (alone and against the other pools), resolve kind names, and Calico's selector language.
// Everything above (CLI, datastores, IPAM, node agent) imports from here, not from the files behind it.

export { parseDocuments, toResource } from './parse.js';
export { applyDefaults, BGP_DEFAULTS, DEFAULT_BLOCK_SIZE, NAMESPACE_NAME_LABEL } from './defaults.js';
export { validateResource, validateAgainst } from './validate.js';
export { parsePeerIP } from './field-checks.js';
export { ResourceError, formatProblem, type Problem } from './problems.js';
export { resolveKind, resourceKey, KIND_INFO, type KindInfo } from './kinds.js';
export { parseSelector, SelectorSyntaxError, type Selector } from './selector.js';
export { parseAsNumber } from './schema.js';
export { notInEffect, NOT_IN_EFFECT, type NotInEffect } from './effect.js';
export { parseCidr, cidrsOverlap, type Cidr } from './cidr.js';
export { parseWorkloadEndpointName, workloadEndpointName } from './workload-names.js';
export * from './types.js';
