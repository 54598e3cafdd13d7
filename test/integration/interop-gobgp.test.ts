// tortie bgp speaker against a real gobgp peer: iBGP and eBGP, routes both ways, wrong AS. See interop-suite.ts.
import { describe } from 'vitest';
import { interopSuite } from './interop-suite.js';

describe('interop: gobgp', () => interopSuite('gobgp', import.meta.url));
