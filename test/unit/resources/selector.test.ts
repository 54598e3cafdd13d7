// Calico's selector language case by case: each operator on present, absent and other values; precedence;
// quoting; and syntax errors with the position of the caret.

import { describe, expect, it } from 'vitest';
import { parseSelector, SelectorSyntaxError } from '../../../src/resources/index.js';

const RR = { 'route-reflector': 'true', zone: 'a', 'projectcalico.org/name': 'node-1', tier: 'frontend-web' };
const PLAIN = { zone: 'b' };
const NONE = {};

/** [selector, matches RR, matches PLAIN, matches NONE] */
const CASES: Array<[string, boolean, boolean, boolean]> = [
  ['all()', true, true, true],
  ['', true, true, true],
  ['   ', true, true, true],
  ['global()', true, true, true],
  ['has(route-reflector)', true, false, false],
  ['!has(route-reflector)', false, true, true],
  ["route-reflector == 'true'", true, false, false],
  ['route-reflector == "true"', true, false, false],
  ["route-reflector != 'true'", false, true, true],
  ["zone == 'b'", false, true, false],
  ["zone != 'b'", true, false, true],
  ["zone in {'a', 'c'}", true, false, false],
  ["zone in {'a','b'}", true, true, false],
  ['zone in {}', false, false, false],
  ["zone not in {'a'}", false, true, true],
  ["zone not  in {'a'}", false, true, true],
  ["projectcalico.org/name == 'node-1'", true, false, false],
  ["tier contains 'end-w'", true, false, false],
  ["tier starts with 'front'", true, false, false],
  ["tier ends with 'web'", true, false, false],
  ["tier ends with 'front'", false, false, false],
  ["zone == 'a' && has(tier)", true, false, false],
  ["zone == 'a' || zone == 'b'", true, true, false],
  ["!(zone == 'a')", false, true, true],
  ["!zone == 'a'", false, true, true],
  ['!!has(zone)', true, true, false],
  ["has(zone) && zone == 'b' || has(tier)", true, true, false],
  ["has(tier) || has(zone) && zone == 'b'", true, true, false],
  ["(has(tier) || has(zone)) && zone == 'b'", false, true, false],
  ["zone=='a'&&has(tier)", true, false, false],
  ["\tzone == 'a'\n", true, false, false],
];

describe('parseSelector', () => {
  it('has cases', () => {
    expect(CASES.length).toBeGreaterThan(20);
  });

  it.each(CASES)('%j → RR %s, PLAIN %s, NONE %s', (text, rr, plain, none) => {
    const selector = parseSelector(text);
    expect(selector.text).toBe(text);
    expect([selector.matches(RR), selector.matches(PLAIN), selector.matches(NONE)]).toEqual([rr, plain, none]);
  });

  it('does not treat inherited object keys as labels', () => {
    expect(parseSelector('has(constructor)').matches({})).toBe(false);
    expect(parseSelector("toString != 'x'").matches({})).toBe(true);
  });

  /** [selector, position of the caret, part of the reason] */
  const ERRORS: Array<[string, number, string]> = [
    ["zone == 'a", 8, "unterminated string (no closing ')"],
    ['zone = "a"', 5, 'expected =='],
    ['a & b', 2, 'expected &&'],
    ['a | b', 2, 'expected ||'],
    ['zone', 4, 'expected an operator after label "zone"'],
    ['zone is "a"', 5, 'expected an operator after label "zone"'],
    ['zone == a', 8, 'expected a quoted value, found "a"'],
    ['has(zone', 8, 'expected a closing ) after has(zone, found the end'],
    ['has()', 4, 'expected a label inside has()'],
    ['all(', 4, 'expected ) after all('],
    ["(zone == 'a'", 12, 'expected a closing ), found the end'],
    ["zone == 'a' zone == 'b'", 12, 'expected && or || or the end, found "zone"'],
    ["zone == 'a' &&", 14, 'expected a label, has(), all() or (, found the end'],
    ["zone in {'a' 'b'}", 13, 'expected , or } in the set, found string "b"'],
    ["zone in 'a'", 8, 'expected a set like {"a", "b"}'],
    ['zone == "a" @', 12, 'unexpected character "@"'],
    ['{', 0, 'expected a label, has(), all() or (, found "{"'],
  ];

  it.each(ERRORS)('%j is refused at position %i', (text, position, reason) => {
    let error: unknown;
    try {
      parseSelector(text);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(SelectorSyntaxError);
    const e = error as SelectorSyntaxError;
    expect(e.position).toBe(position);
    expect(e.message).toContain(reason);
    const lines = e.message.split('\n');
    expect(lines[1]).toBe(`  ${text}`);
    expect(lines[2]).toBe(`  ${' '.repeat(position)}^`);
  });

  it('writes a message a person can read', () => {
    expect(() => parseSelector("zone == 'a")).toThrow(
      `selector "zone == 'a": unterminated string (no closing ') at position 8\n  zone == 'a\n          ^`,
    );
  });
});
