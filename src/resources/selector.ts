// Calico's label selector language, as used by IPPool.nodeSelector and BGPPeer.nodeSelector/peerSelector.
//
//   all()  global()  has(k)  !has(k)  k == 'v'  k != 'v'  k in {'a','b'}  k not in {'a'}
//   k contains 's'  k starts with 's'  k ends with 's'  !e  e && e  e || e  ( e )
//
// Precedence, loosest first: ||, &&, unary !. Strings take double or single quotes, no escapes. A label
// key is letters, digits and `_ . / -` (so `projectcalico.org/name` is one key).
//
// Why this is hard: Calico's negative operators match a missing label (`k != 'v'` and `k not in {...}`
// are true when k is absent), which is not what a reader of `!=` expects; and an empty selector means
// all(). Errors carry the position so the message can point a caret at it.

export interface Selector {
  matches(labels: Record<string, string>): boolean;
  readonly text: string;
}

export class SelectorSyntaxError extends Error {
  readonly position: number;
  constructor(
    readonly selector: string,
    position: number,
    reason: string,
  ) {
    super(
      `selector ${JSON.stringify(selector)}: ${reason} at position ${position}\n  ${selector}\n  ${' '.repeat(position)}^`,
    );
    this.name = 'SelectorSyntaxError';
    this.position = position;
  }
}

type Match = (labels: Record<string, string>) => boolean;

type TokenKind = 'label' | 'string' | '(' | ')' | '{' | '}' | ',' | '==' | '!=' | '!' | '&&' | '||' | 'end';

interface Token {
  kind: TokenKind;
  value: string;
  pos: number;
}

const LABEL_CHAR = /[A-Za-z0-9_./-]/;

/** Punctuation tokens, longest first so `!=` wins over `!`. */
const PUNCTUATION: ReadonlyArray<TokenKind> = ['==', '!=', '&&', '||', '!', '(', ')', '{', '}', ','];

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  for (let guard = 0; guard <= text.length + 1; guard++) {
    while (i < text.length && /\s/.test(text[i]!)) i++;
    if (i >= text.length) {
      tokens.push({ kind: 'end', value: '', pos: text.length });
      return tokens;
    }
    const c = text[i]!;
    if (c === '"' || c === "'") {
      const close = text.indexOf(c, i + 1);
      if (close < 0) throw new SelectorSyntaxError(text, i, `unterminated string (no closing ${c})`);
      tokens.push({ kind: 'string', value: text.slice(i + 1, close), pos: i });
      i = close + 1;
      continue;
    }
    const punct = PUNCTUATION.find((p) => text.startsWith(p, i));
    if (punct !== undefined) {
      tokens.push({ kind: punct, value: punct, pos: i });
      i += punct.length;
      continue;
    }
    if (c === '=' || c === '&' || c === '|') {
      throw new SelectorSyntaxError(text, i, `expected ${c}${c === '=' ? '=' : c}`);
    }
    if (LABEL_CHAR.test(c)) {
      const start = i;
      while (i < text.length && LABEL_CHAR.test(text[i]!)) i++;
      tokens.push({ kind: 'label', value: text.slice(start, i), pos: start });
      continue;
    }
    throw new SelectorSyntaxError(text, i, `unexpected character ${JSON.stringify(c)}`);
  }
  throw new SelectorSyntaxError(text, i, 'tokenizer made no progress');
}

/** Operators after a label: words (possibly two) and how each compares a label value with its operand. */
const LABEL_OPERATORS: ReadonlyArray<{
  words: string[];
  operand: 'string' | 'set';
  test: (value: string | undefined, operand: string[]) => boolean;
}> = [
  { words: ['not', 'in'], operand: 'set', test: (v, set) => v === undefined || !set.includes(v) },
  { words: ['in'], operand: 'set', test: (v, set) => v !== undefined && set.includes(v) },
  { words: ['contains'], operand: 'string', test: (v, [s]) => v !== undefined && v.includes(s!) },
  { words: ['starts', 'with'], operand: 'string', test: (v, [s]) => v !== undefined && v.startsWith(s!) },
  { words: ['ends', 'with'], operand: 'string', test: (v, [s]) => v !== undefined && v.endsWith(s!) },
];

class Parser {
  private at = 0;
  constructor(
    private readonly text: string,
    private readonly tokens: Token[],
  ) {}

  private peek(offset = 0): Token {
    return this.tokens[Math.min(this.at + offset, this.tokens.length - 1)]!;
  }

  private next(): Token {
    const token = this.peek();
    if (this.at < this.tokens.length - 1) this.at++;
    return token;
  }

  private fail(token: Token, reason: string): never {
    throw new SelectorSyntaxError(this.text, token.pos, reason);
  }

  private expect(kind: TokenKind, what: string): Token {
    const token = this.next();
    if (token.kind !== kind) this.fail(token, `expected ${what}, found ${describe(token)}`);
    return token;
  }

  parseAll(): Match {
    if (this.peek().kind === 'end') return () => true; // An empty selector is all().
    const match = this.parseOr();
    const rest = this.peek();
    if (rest.kind !== 'end') this.fail(rest, `expected && or || or the end, found ${describe(rest)}`);
    return match;
  }

  private parseOr(): Match {
    const terms = [this.parseAnd()];
    while (this.peek().kind === '||') {
      this.next();
      terms.push(this.parseAnd());
    }
    return terms.length === 1 ? terms[0]! : (labels) => terms.some((t) => t(labels));
  }

  private parseAnd(): Match {
    const terms = [this.parseUnary()];
    while (this.peek().kind === '&&') {
      this.next();
      terms.push(this.parseUnary());
    }
    return terms.length === 1 ? terms[0]! : (labels) => terms.every((t) => t(labels));
  }

  private parseUnary(): Match {
    if (this.peek().kind === '!') {
      this.next();
      const inner = this.parseUnary();
      return (labels) => !inner(labels);
    }
    return this.parsePrimary();
  }

  private parsePrimary(): Match {
    const token = this.next();
    if (token.kind === '(') {
      const inner = this.parseOr();
      this.expect(')', 'a closing )');
      return inner;
    }
    if (token.kind !== 'label') this.fail(token, `expected a label, has(), all() or (, found ${describe(token)}`);
    const call = this.peek().kind === '(' ? token.value : null;
    if (call === 'all' || call === 'global') {
      this.next();
      this.expect(')', `) after ${call}(`);
      return () => true;
    }
    if (call === 'has') {
      this.next();
      const key = this.expect('label', 'a label inside has()').value;
      this.expect(')', 'a closing ) after has(' + key);
      return (labels) => Object.hasOwn(labels, key);
    }
    return this.parseComparison(token.value);
  }

  private parseComparison(key: string): Match {
    const op = this.next();
    if (op.kind === '==' || op.kind === '!=') {
      const value = this.expect('string', 'a quoted value').value;
      return op.kind === '=='
        ? (labels) => Object.hasOwn(labels, key) && labels[key] === value
        : (labels) => !Object.hasOwn(labels, key) || labels[key] !== value;
    }
    const operator =
      op.kind === 'label'
        ? LABEL_OPERATORS.find((o) =>
            o.words.every((w, i) =>
              i === 0 ? op.value === w : this.peek(i - 1).kind === 'label' && this.peek(i - 1).value === w,
            ),
          )
        : undefined;
    if (operator === undefined) {
      this.fail(
        op,
        `expected an operator after label ${JSON.stringify(key)} (==, !=, in, not in, contains, starts with, ends with), found ${describe(op)}`,
      );
    }
    for (let i = 1; i < operator.words.length; i++) this.next();
    const operand = operator.operand === 'string' ? [this.expect('string', 'a quoted value').value] : this.parseSet();
    return (labels) => operator.test(Object.hasOwn(labels, key) ? labels[key] : undefined, operand);
  }

  private parseSet(): string[] {
    this.expect('{', 'a set like {"a", "b"}');
    const values: string[] = [];
    if (this.peek().kind === '}') {
      this.next();
      return values;
    }
    for (let guard = 0; guard < this.tokens.length; guard++) {
      values.push(this.expect('string', 'a quoted value in the set').value);
      const sep = this.next();
      if (sep.kind === '}') return values;
      if (sep.kind !== ',') this.fail(sep, `expected , or } in the set, found ${describe(sep)}`);
    }
    return this.fail(this.peek(), 'unterminated set');
  }
}

function describe(token: Token): string {
  if (token.kind === 'end') return 'the end';
  if (token.kind === 'string') return `string ${JSON.stringify(token.value)}`;
  if (token.kind === 'label') return `"${token.value}"`;
  return `"${token.kind}"`;
}

/** Parses a Calico selector; throws SelectorSyntaxError (with the position) on bad syntax. */
export function parseSelector(text: string): Selector {
  const match = new Parser(text, tokenize(text)).parseAll();
  return { text, matches: (labels) => match(labels) };
}
