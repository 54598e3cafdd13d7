// Every benchmark `npm run bench` knows. Add yours here; `--only <name>` selects by `Bench.name`.
import type { Bench } from './bench.js';
import { codecBench } from './codec.js';

export const BENCHES: readonly Bench[] = [codecBench];
