#!/usr/bin/env node
// The `tortie` command: dispatches to subcommands. Exit codes: 0 ok, 1 runtime failure, 2 usage error.

import { SPEAKER_USAGE, UsageError, parseSpeakerArgs } from './speaker-args.js';

const USAGE = `usage: tortie <command> [options]

commands:
  bgp speaker     run a standalone BGP-4 speaker (peers, announced routes, JSON events)
  version         print the version

Run 'tortie <command> --help' for a command's options.
`;

async function main(argv: string[]): Promise<number> {
  const [command, sub, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (command === 'version' || command === '--version') {
    const { readFile } = await import('node:fs/promises');
    const pkg = JSON.parse(await readFile(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
    process.stdout.write(`tortie ${pkg.version}\n`);
    return 0;
  }
  if (command === 'bgp' && sub === 'speaker') {
    if (rest.includes('--help') || rest.includes('-h')) {
      process.stdout.write(SPEAKER_USAGE);
      return 0;
    }
    const options = parseSpeakerArgs(rest);
    const { runSpeaker } = await import('./speaker-command.js');
    return runSpeaker(options);
  }
  throw new UsageError(`unknown command "${[command, sub].filter(Boolean).join(' ')}"\n\n${USAGE}`);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError) {
      process.stderr.write(`tortie: ${error.message}\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`tortie: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
