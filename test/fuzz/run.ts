// `npm run fuzz`: the BGP session fuzzer and the parser fuzzers, with a report.
//
//   node dist/test/fuzz/run.js [--messages N] [--seed S] [--parsers N] [--only bgp|parsers]
//
// Defaults: 1,000,000 BGP messages, 20,000 inputs per parser, a random seed (printed). Exit status 1 on any
// violation, with the seed and the message hex to reproduce it (`--seed S --messages <index+1>`).
import { parseArgs } from 'node:util';
import { formatOutcomes, fuzzBgp } from './bgp-fuzz.js';
import { fuzzParsers } from './parsers.js';
import { randomSeed } from './random.js';

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '1000000' },
    seed: { type: 'string' },
    parsers: { type: 'string', default: '20000' },
    only: { type: 'string' },
  },
});
const seed = values.seed !== undefined ? Number(values.seed) >>> 0 : randomSeed();
const messages = Number(values.messages);
const perParser = Number(values.parsers);
if (!Number.isInteger(messages) || messages < 0 || !Number.isInteger(perParser) || perParser < 0) {
  console.error('usage: run.js [--messages N] [--seed S] [--parsers N] [--only bgp|parsers]');
  process.exit(2);
}

let failed = false;
console.log(`fuzz seed ${seed}`);
if (values.only !== 'parsers') {
  const report = await fuzzBgp({ messages, seed, progress: (n) => process.stderr.write(`  ... ${n} messages\n`) });
  console.log(
    `BGP session: ${report.messages} messages in ${(report.ms / 1000).toFixed(1)} s (${(report.cpuMs / 1000).toFixed(1)} s CPU), ` +
      `${report.perSecond} messages/s (${report.perCpuSecond} per CPU second), escapes ${report.escapes}, violations ${report.violations.length}`,
  );
  console.log(formatOutcomes(report.outcomes).join('\n'));
  for (const v of report.violations.slice(0, 5)) {
    failed = true;
    console.log(
      `VIOLATION (seed ${v.seed}, message #${v.index}, peer ${v.peer} in ${v.state}, from ${v.seedName}): ${v.reason}\n  hex ${v.hex}`,
    );
  }
}
if (values.only !== 'bgp') {
  const reports = await fuzzParsers({ count: perParser, seed });
  for (const r of reports) {
    console.log(
      `${r.name.padEnd(40)} ${String(r.inputs).padStart(8)} inputs  ${String(r.perSecond).padStart(8)}/s  ${r.typedErrors} typed errors  ${r.violations.length} violations`,
    );
    for (const v of r.violations.slice(0, 3)) {
      failed = true;
      console.log(
        `VIOLATION (seed ${seed}, ${r.name} input #${v.index}): ${v.reason}\n  input ${String(JSON.stringify(v.input) ?? v.input).slice(0, 2000)}`,
      );
    }
  }
}
process.exit(failed ? 1 : 0);
