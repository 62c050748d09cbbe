/**
 * Loader for the official BIP324 CSV vectors in test/vectors/ (see its README): a header line names
 * the columns, lines end in CRLF, nothing is quoted. Rows are looked up by column name, never position.
 */
import { readFileSync } from 'node:fs';

/** test/vectors/ at the repo root, reached from the compiled dist/test/helpers/. */
export const VECTORS_DIR = new URL('../../../test/vectors/', import.meta.url);

export type CsvRow = Readonly<Record<string, string>>;

export function loadCsv(fileName: string): CsvRow[] {
  const text = readFileSync(new URL(fileName, VECTORS_DIR), 'latin1');
  const lines = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  const [header, ...body] = lines;
  if (header === undefined) throw new Error(`${fileName}: empty file`);
  const columns = header.split(',');
  return body.map((line, i) => {
    const fields = line.split(',');
    if (fields.length !== columns.length) {
      throw new Error(`${fileName}: row ${i} has ${fields.length} fields, header has ${columns.length}`);
    }
    const row: Record<string, string> = {};
    columns.forEach((c, j) => (row[c] = fields[j]!));
    return row;
  });
}

/** The named column; throws on a typo so a misspelt column cannot silently test nothing. */
export function col(row: CsvRow, name: string): string {
  const v = row[name];
  if (v === undefined) throw new Error(`no column ${name}`);
  return v;
}

export function hexCol(row: CsvRow, name: string): Buffer {
  return Buffer.from(col(row, name), 'hex');
}
