// YAML read the way Calico reads it. calicoctl and the CRD path decode YAML with Go's yaml.v2 (YAML 1.1
// scalars) into a generic value, then convert it to JSON for the typed resource (projectcalico/
// go-yaml-wrapper, like sigs.k8s.io/yaml). Two things follow that a YAML 1.2 reader gets different:
//
//   1. An unquoted `yes`/`no`/`on`/`off`/`y`/`n` (any of yaml.v2's spellings) is a boolean, `0755` is octal,
//      `1_000` is 1000, `0b101` is binary.
//   2. Where the resource's field is a string (a label value, a selector, a name) and the scalar resolved to
//      a boolean or a number, the string stored is the value formatted by Go: `true`/`false`, the integer in
//      decimal, a float with strconv.FormatFloat(f, 'g', -1, 64). So `route-reflector: yes` is the label
//      value "true", `version: 1.10` is "1.1".
//
// resolvePlainScalar does (1) for one plain (unquoted, untagged) scalar; goString does (2) for a value
// already resolved. parse.ts applies the first to every plain scalar and schema.ts the second wherever a
// string is expected. Known difference: a float written with an integer value of 1e21 or more (or 1e6 or
// more written as a float, like `1000000.0`) — Go prints it with an exponent, tortie in decimal; and a
// plain timestamp stays the text it was written as.

const TRUE = new Set(['y', 'Y', 'yes', 'Yes', 'YES', 'true', 'True', 'TRUE', 'on', 'On', 'ON']);
const FALSE = new Set(['n', 'N', 'no', 'No', 'NO', 'false', 'False', 'FALSE', 'off', 'Off', 'OFF']);
const NULL = new Set(['', '~', 'null', 'Null', 'NULL']);
const SPECIAL_FLOATS: ReadonlyMap<string, number> = new Map([
  ...['.inf', '.Inf', '.INF', '+.inf', '+.Inf', '+.INF'].map((s) => [s, Infinity] as const),
  ...['-.inf', '-.Inf', '-.INF'].map((s) => [s, -Infinity] as const),
  ...['.nan', '.NaN', '.NAN'].map((s) => [s, NaN] as const),
]);
/** yaml.v2's yamlStyleFloat. */
const FLOAT = /^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$/;

/** Go's strconv.ParseInt(text, 0, 64) (base from the prefix: 0x, 0o, 0b, a leading 0 is octal), or null. */
function parseGoInt(text: string): number | null {
  const m = /^([-+]?)(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)$/.exec(text);
  if (!m) return null;
  const sign = m[1] === '-' ? -1n : 1n;
  const body = m[2]!;
  let value: bigint;
  if (/^0[xXoObB]/.test(body)) value = BigInt(`0${body[1]!.toLowerCase()}${body.slice(2)}`);
  else if (body.length > 1 && body.startsWith('0')) value = BigInt(`0o${body.slice(1)}`);
  else value = BigInt(body);
  value *= sign;
  // Past int64 yaml.v2 tries uint64, then float: keep such a value as the text (a string).
  if (value > 9223372036854775807n || value < -9223372036854775808n) return null;
  return Number(value);
}

/** What yaml.v2 makes of one plain scalar's text: null, a boolean, a number, or the string itself. */
export function resolvePlainScalar(text: string): null | boolean | number | string {
  if (NULL.has(text)) return null;
  if (TRUE.has(text)) return true;
  if (FALSE.has(text)) return false;
  const special = SPECIAL_FLOATS.get(text);
  if (special !== undefined) return special;
  if (!/^[-+.0-9]/.test(text)) return text;
  const plain = text.replace(/_/g, '');
  const int = parseGoInt(plain);
  if (int !== null) return int;
  if (FLOAT.test(plain)) return Number(plain);
  return text;
}

/** Go's strconv.FormatFloat(f, 'g', -1, 64) for a finite number that is not an integer. */
function goFloat(f: number): string {
  const [mantissa, expText] = f.toExponential().split('e') as [string, string];
  const exp = Number(expText);
  // 'g' with the shortest precision: %e when the decimal exponent is < -4 or >= 6 (Go's eprec for shortest).
  if (exp < -4 || exp >= 6) return `${mantissa}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  return String(f);
}

/** The string Calico stores where a string field got a scalar that resolved to a boolean or a number. */
export function goString(value: boolean | number): string {
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (Number.isNaN(value)) return 'NaN';
  if (!Number.isFinite(value)) return value > 0 ? '+Inf' : '-Inf';
  if (Number.isInteger(value)) return String(BigInt(value));
  return goFloat(value);
}
