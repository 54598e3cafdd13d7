// The CLI's one table writer: the two layouts calicoctl prints, for every command that prints a table
// (`node status`, `ipam show`/`check`, `get`). Pure text; imports nothing.
//   boxTable     +---+ rules, headers centred (the odd space goes right), cells padded one space each side
//   columnTable  left-aligned columns separated by three spaces, trailing spaces trimmed

/**
 * A calicoctl-style boxed table: +---+ rules, headers centred (the odd space goes right), every cell
 * left-aligned and padded one space each side.
 */
export function boxTable(
  headers: readonly string[],
  rows: ReadonlyArray<readonly string[]>,
  align: ReadonlyArray<'left' | 'right'> = [],
): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const rule = `+${widths.map((w) => '-'.repeat(w + 2)).join('+')}+`;
  const centre = (text: string, width: number) => {
    const left = Math.floor((width - text.length) / 2);
    return ' '.repeat(left) + text + ' '.repeat(width - text.length - left);
  };
  const header = `|${headers.map((h, i) => ` ${centre(h, widths[i] ?? 0)} `).join('|')}|`;
  const cell = (text: string, i: number, width: number) =>
    align[i] === 'right' ? text.padStart(width) : text.padEnd(width);
  const body = rows.map((row) => `|${widths.map((w, i) => ` ${cell(row[i] ?? '', i, w)} `).join('|')}|`);
  return [rule, header, rule, ...body, rule].join('\n') + '\n';
}

/** Left-aligned columns separated by three spaces, as calicoctl prints them (`get` without -o). */
export function columnTable(headers: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join('   ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}
