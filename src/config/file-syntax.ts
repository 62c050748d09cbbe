/**
 * The configuration file's syntax: `key=value` lines, as bitcoin.conf and torrc use, with exactly
 * the rules the sample configuration documents:
 * - blank lines and lines whose first non-blank character is `#` or `;` are comments;
 * - in a value, `#` or `;` after a blank starts a comment; anywhere else they are part of the value
 *   (`socks5://alice:s3cr#t@host:9050` stays whole), and `\#`, `\;`, `\\` are a literal #, ; and \;
 * - a value in double quotes is taken as written, blanks, # and ; included (`\"` and `\\` inside);
 * - a key alone (`v2-only`) is an on/off option set on; `key[]=value` is the same as `key=value`;
 * - `[section]` lines are refused rather than silently ignored.
 * Values never lose characters silently: a value cut short by a comment would be a wrong value, and
 * a cut-short password would end up in an error message.
 */

export interface ConfigLine {
  key: string;
  /** true for a key without "=". */
  value: string | true;
  line: number;
}

export class ConfigSyntaxError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(message);
  }
}

const BLANK = /\s/;

export function parseConfigText(text: string): ConfigLine[] {
  const out: ConfigLine[] = [];
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  lines.forEach((raw, i) => {
    const lineNo = i + 1;
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return;
    if (line.startsWith('[')) {
      const end = line.indexOf(']');
      throw new ConfigSyntaxError(lineNo, `sections like [${end > 0 ? line.slice(1, end) : line.slice(1)}] are not supported`);
    }
    const eq = line.indexOf('=');
    if (eq < 0) {
      out.push({ key: stripArray(stripComment(line).trim()), value: true, line: lineNo });
      return;
    }
    const key = stripArray(line.slice(0, eq).trim());
    if (key === '') throw new ConfigSyntaxError(lineNo, 'a line starts with "=" (expected key=value)');
    out.push({ key, value: parseValue(line.slice(eq + 1), lineNo), line: lineNo });
  });
  return out;
}

function stripArray(key: string): string {
  return key.endsWith('[]') ? key.slice(0, -2) : key;
}

/** A key line without "=" may still carry a comment after a blank. */
function stripComment(text: string): string {
  const m = /\s[#;]/.exec(text);
  return m === null ? text : text.slice(0, m.index);
}

function parseValue(rest: string, lineNo: number): string {
  const text = rest.trimStart();
  // "key= # note": the blank before the # is gone from `text`, but it still makes the rest a comment.
  if (text !== rest && (text.startsWith('#') || text.startsWith(';'))) return '';
  if (text.startsWith('"')) return parseQuoted(text, lineNo);
  let value = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\\' && i + 1 < text.length && '#;\\'.includes(text[i + 1])) {
      value += text[++i];
      continue;
    }
    if ((c === '#' || c === ';') && i > 0 && BLANK.test(text[i - 1])) break;
    value += c;
  }
  return value.trimEnd();
}

function parseQuoted(text: string, lineNo: number): string {
  let value = '';
  let i = 1;
  for (; i < text.length; i++) {
    const c = text[i];
    if (c === '\\' && i + 1 < text.length && (text[i + 1] === '"' || text[i + 1] === '\\')) {
      value += text[++i];
      continue;
    }
    if (c === '"') break;
    value += c;
  }
  if (i >= text.length) throw new ConfigSyntaxError(lineNo, 'a quoted value has no closing "');
  const after = text.slice(i + 1).trim();
  if (after !== '' && !after.startsWith('#') && !after.startsWith(';')) {
    throw new ConfigSyntaxError(lineNo, `unexpected ${JSON.stringify(after)} after the closing quote`);
  }
  return value;
}
