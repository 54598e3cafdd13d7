// The one error of the command line: arguments the user got wrong. Every command's parser throws it naming
// the flag, the value and what would be accepted; main.ts prints `tortie: <message>` and exits 2.

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
