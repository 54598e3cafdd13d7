// tortie bgp speaker against a real bird2 peer: iBGP and eBGP, routes both ways, wrong AS. See interop-suite.ts.
import { describe } from 'vitest';
import { interopSuite } from './interop-suite.js';

describe('interop: bird2', () => interopSuite('bird2', import.meta.url));
