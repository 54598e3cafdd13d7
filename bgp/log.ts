// The one logger interface of the project: the pino methods the code calls, structured fields first and
// the message second (a pino Logger fits, STYLE.md lesson 10). It lives here, in the lowest layer, so that
// bgp/, felix/, ipip/ and src/ all name the same one (test/unit/dependencies.test.ts lets felix/ and ipip/
// import it); a part that needs fewer methods takes a `Pick<Logger, ...>` of it, never an interface of its own.

export interface Logger {
  debug(fields: object, message?: string): void;
  info(fields: object, message?: string): void;
  warn(fields: object, message?: string): void;
  error(fields: object, message?: string): void;
}

/** Logs nothing (a library given no logger). */
export const silentLogger: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };
