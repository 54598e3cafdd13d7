// tortie bgp speaker against a real bird1 peer: iBGP and eBGP, routes both ways, wrong AS. See interop-suite.ts.
import { describe } from 'vitest';
import { interopSuite } from './interop-suite.js';

describe('interop: bird1', () => interopSuite('bird1', import.meta.url));
