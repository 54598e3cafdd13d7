// Calico reads YAML as Go's yaml.v2 does (YAML 1.1 scalars) and stores a boolean or number that lands in a
// string field as Go formats it. One test per case, through the same parse path `tortie apply` uses.

import { describe, expect, it } from 'vitest';
import { parseDocuments, toResource } from '../../../src/resources/parse.js';
import { goString, resolvePlainScalar } from '../../../src/resources/yaml11.js';

function node(labels: string): Record<string, string> {
  const text = `apiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: n1\n  labels:\n${labels}\nspec: {}\n`;
  const resource = toResource(parseDocuments(text, 'test.yaml')[0], 0);
  return resource.metadata.labels ?? {};
}

describe('YAML 1.1 scalars, as Calico decodes them', () => {
  it.each([
    ['routeReflector: true', 'routeReflector', 'true'],
    ['route-reflector: yes', 'route-reflector', 'true'],
    ['route-reflector: Yes', 'route-reflector', 'true'],
    ['route-reflector: YES', 'route-reflector', 'true'],
    ['route-reflector: on', 'route-reflector', 'true'],
    ['route-reflector: y', 'route-reflector', 'true'],
    ['edge: no', 'edge', 'false'],
    ['edge: off', 'edge', 'false'],
    ['edge: N', 'edge', 'false'],
    ['version: 1.10', 'version', '1.1'],
    ['rack: 0755', 'rack', '493'],
    ['rack: 0x1F', 'rack', '31'],
    ['rack: 1_000', 'rack', '1000'],
    ['rack: 0b101', 'rack', '5'],
    ['rack: 42', 'rack', '42'],
    ['zone: "yes"', 'zone', 'yes'],
    ["zone: 'on'", 'zone', 'on'],
    ['zone: !!str yes', 'zone', 'yes'],
    ['zone: yesterday', 'zone', 'yesterday'],
    ['zone: 12:30', 'zone', '12:30'],
  ])('label %s → "%s" is %j', (line, key, value) => {
    expect(node(`    ${line}`)[key]).toBe(value);
  });

  it('a reflector selector on a label written `route-reflector: yes` matches "true", as in Calico', () => {
    expect(node('    route-reflector: yes')).toEqual({ 'route-reflector': 'true' });
  });

  it('a boolean field takes yes/no/on/off, an integer field octal', () => {
    const text =
      'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec:\n  cidr: 10.1.0.0/16\n  natOutgoing: yes\n  disabled: off\n  blockSize: 032\n';
    const pool = toResource(parseDocuments(text, 'test.yaml')[0], 0);
    expect(pool.spec).toMatchObject({ natOutgoing: true, disabled: false, blockSize: 26 });
  });

  it('a quoted "yes" where a boolean is expected is still refused, naming field and value', () => {
    const text =
      'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec:\n  cidr: 10.1.0.0/16\n  natOutgoing: "yes"\n';
    expect(() => toResource(parseDocuments(text, 'test.yaml')[0], 0)).toThrow(
      /spec\.natOutgoing.*"yes" is not true or false/s,
    );
  });

  it('an enum field with an on/off word is refused (Calico would see "true")', () => {
    const text =
      'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec:\n  cidr: 10.1.0.0/16\n  ipipMode: on\n';
    expect(() => toResource(parseDocuments(text, 'test.yaml')[0], 0)).toThrow(/spec\.ipipMode/);
  });

  it('a name written as a number is the string', () => {
    const text = 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: 1234}\nspec: {cidr: 10.1.0.0/16}\n';
    expect(toResource(parseDocuments(text, 'test.yaml')[0], 0).metadata.name).toBe('1234');
  });

  it('resolvePlainScalar follows yaml.v2', () => {
    expect(resolvePlainScalar('~')).toBeNull();
    expect(resolvePlainScalar('Null')).toBeNull();
    expect(resolvePlainScalar('-0x10')).toBe(-16);
    expect(resolvePlainScalar('1e3')).toBe(1000);
    expect(resolvePlainScalar('.5')).toBe(0.5);
    expect(resolvePlainScalar('.inf')).toBe(Infinity);
    expect(resolvePlainScalar('99999999999999999999')).toBe(1e20); // past int64 and uint64: a float, as in yaml.v2
    expect(resolvePlainScalar('10.244.0.0/16')).toBe('10.244.0.0/16');
    expect(resolvePlainScalar('64512')).toBe(64512);
  });

  it('goString formats as Go does', () => {
    expect(goString(true)).toBe('true');
    expect(goString(1.1)).toBe('1.1');
    expect(goString(0.00001)).toBe('1e-05');
    expect(goString(1234567.5)).toBe('1.2345675e+06');
    expect(goString(123456.5)).toBe('123456.5');
    expect(goString(-3)).toBe('-3');
  });
});
