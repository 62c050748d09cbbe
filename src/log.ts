/**
 * Line logger for the daemon: one grep-friendly line per event,
 *   2026-11-26T07:00:00.000Z INFO  conn=12 established peer=1.2.3.4:8333 transport=v2
 * i.e. ISO time, level padded to 5, the child's fields, the message, then the call's fields.
 *
 * Under systemd, when standard error is the journal's stream (sd-daemon(3), JOURNAL_STREAM), each
 * line instead starts with its syslog priority, <3> error, <4> warning, <6> info, <7> debug, so
 * `journalctl -p warning` filters by level, and carries no time of its own (the journal stamps
 * every line), unless --log-timestamps asks for it (Bitcoin Core's -logtimestamps):
 *   <6>INFO  conn=12 established peer=1.2.3.4:8333 transport=v2
 *
 * Operator conventions (Bitcoin Core debug.log, Tor): the file is opened for append and reopened on
 * SIGHUP so logrotate can move it away. Lines are written with fs.writeSync so nothing is lost when
 * the process exits right after logging (a stream would still hold the line in its buffer).
 * Logging must never take the proxy down: every write error is swallowed.
 */

import { closeSync, fstatSync, openSync, writeSync } from 'node:fs';

import { ProxyError } from './errors.js';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
export type LogFields = Record<string, string | number | boolean | undefined | null>;

export interface Logger {
  error(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  debug(msg: string, fields?: LogFields): void;
  /** A logger that prefixes every line with these fields (e.g. { conn: 12 }). */
  child(fields: LogFields): Logger;
  /** Reopen the log file (SIGHUP, logrotate); no-op when logging to stderr. */
  reopen(): void;
  readonly level: LogLevel;
}

export const LOG_LEVELS: readonly LogLevel[] = ['error', 'warn', 'info', 'debug'];

const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };
const LABEL: Record<LogLevel, string> = { error: 'ERROR', warn: 'WARN ', info: 'INFO ', debug: 'DEBUG' };
/** syslog(3) priorities, as systemd-journald reads them from the start of a stream line (sd-daemon(3)). */
const PRIORITY: Record<LogLevel, string> = { error: '<3>', warn: '<4>', info: '<6>', debug: '<7>' };

/**
 * True when file descriptor `fd` is the stream systemd connected to the journal. systemd sets
 * JOURNAL_STREAM to that stream's "device:inode"; the variable alone is not enough, since every
 * process started from a desktop session or a service inherits it, terminals included, so the
 * descriptor's own device and inode must match (what sd-daemon(3) recommends).
 */
export function isJournalStream(env: NodeJS.ProcessEnv = process.env, fd = 2): boolean {
  const m = /^([0-9]+):([0-9]+)$/.exec(env.JOURNAL_STREAM ?? '');
  if (m === null) return false;
  try {
    const st = fstatSync(fd, { bigint: true });
    return st.dev === BigInt(m[1]) && st.ino === BigInt(m[2]);
  } catch {
    return false;
  }
}

export function isLogLevel(value: string): value is LogLevel {
  return Object.prototype.hasOwnProperty.call(RANK, value);
}

// Anything that would split a line or make `key=value` ambiguous is quoted, so `grep conn=12`
// and `cut -d' '` keep working whatever a peer put into a user agent or an error message.
// eslint-disable-next-line no-control-regex -- control characters are exactly what this looks for
const NEEDS_QUOTES = /[\s="\\\u0000-\u001f\u007f]/;

function formatValue(value: string | number | boolean | null): string {
  if (typeof value !== 'string') return String(value);
  return value === '' || NEEDS_QUOTES.test(value) ? JSON.stringify(value) : value;
}

/** " k=v k2=v2" for the defined fields; undefined ones are left out so callers can pass optional values as is. */
export function formatFields(fields: LogFields | undefined): string {
  if (fields === undefined) return '';
  let out = '';
  for (const key of Object.keys(fields)) {
    const value = fields[key];
    if (value === undefined) continue;
    out += ` ${key}=${formatValue(value)}`;
  }
  return out;
}

/** The message stays unquoted for readability, but a newline in it must not start a fake log line. */
function formatMessage(msg: string): string {
  return /[\r\n]/.test(msg) ? msg.replace(/\r/g, '\\r').replace(/\n/g, '\\n') : msg;
}

/** Where lines go. Shared by a logger and all its children so reopen() on any of them moves them all. */
interface Sink {
  write(line: string): void;
  reopen(): void;
}

function writeAllSync(fd: number, line: string): void {
  const bytes = Buffer.from(line, 'utf8');
  let offset = 0;
  let retries = 0;
  while (offset < bytes.length) {
    try {
      offset += writeSync(fd, bytes, offset);
    } catch (err) {
      // stderr may be a non-blocking pipe inherited from the parent; a few retries ride out a
      // full pipe, after that the line is dropped rather than blocking the event loop forever.
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN' && retries++ < 100) continue;
      return;
    }
  }
}

class FileSink implements Sink {
  private fd: number;

  constructor(private readonly path: string) {
    this.fd = openSync(path, 'a');
  }

  write(line: string): void {
    writeAllSync(this.fd, line);
  }

  reopen(): void {
    let fd: number;
    try {
      fd = openSync(this.path, 'a');
    } catch (err) {
      // Keep the old descriptor: losing the log entirely is worse than writing to the rotated file.
      this.write(`${new Date().toISOString()} ${LABEL.error} cannot reopen log file${formatFields({ file: this.path, error: (err as Error).message })}\n`);
      return;
    }
    const old = this.fd;
    this.fd = fd;
    try {
      closeSync(old);
    } catch {
      // already closed: nothing to release
    }
  }
}

class FdSink implements Sink {
  constructor(private readonly fd: number) {}
  write(line: string): void {
    writeAllSync(this.fd, line);
  }
  reopen(): void {}
}

class StreamSink implements Sink {
  constructor(private readonly stream: NodeJS.WritableStream) {}
  write(line: string): void {
    try {
      this.stream.write(line);
    } catch {
      // a destroyed test stream must not break the code under test
    }
  }
  reopen(): void {}
}

/** How lines start: the journal's priority prefix, the time, both or neither. */
interface LineFormat {
  journal: boolean;
  timestamps: boolean;
}

class LineLogger implements Logger {
  constructor(
    private readonly sink: Sink,
    readonly level: LogLevel,
    /** Pre-formatted " k=v" prefix of a child logger, so it is not rebuilt for every line. */
    private readonly prefix: string,
    private readonly format: LineFormat,
  ) {}

  error(msg: string, fields?: LogFields): void {
    this.log('error', msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    this.log('warn', msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    this.log('info', msg, fields);
  }
  debug(msg: string, fields?: LogFields): void {
    this.log('debug', msg, fields);
  }

  child(fields: LogFields): Logger {
    return new LineLogger(this.sink, this.level, this.prefix + formatFields(fields), this.format);
  }

  reopen(): void {
    this.sink.reopen();
  }

  private log(level: LogLevel, msg: string, fields: LogFields | undefined): void {
    // Checked before formatting: debug calls sit on per-connection paths.
    if (RANK[level] > RANK[this.level]) return;
    try {
      const head = this.prefix === '' ? '' : this.prefix.slice(1) + ' ';
      const start = (this.format.journal ? PRIORITY[level] : '') + (this.format.timestamps ? `${new Date().toISOString()} ` : '');
      this.sink.write(`${start}${LABEL[level]} ${head}${formatMessage(String(msg))}${formatFields(fields)}\n`);
    } catch {
      // a field with a throwing toString, or anything else: never let logging throw
    }
  }
}

/**
 * A logger writing to `stream` (tests), else to `file` (opened for append), else to stderr.
 * `journal` adds the syslog priority prefixes (the caller checks isJournalStream()); `timestamps`
 * defaults to on, except with `journal`, since the journal stamps lines itself.
 * Throws ProxyError ERR_CONFIG when the log file cannot be opened, so the CLI can refuse to start
 * instead of running without its log.
 */
export function createLogger(options: { level: LogLevel; file?: string; stream?: NodeJS.WritableStream; journal?: boolean; timestamps?: boolean }): Logger {
  let sink: Sink;
  if (options.stream !== undefined) {
    sink = new StreamSink(options.stream);
  } else if (options.file !== undefined) {
    try {
      sink = new FileSink(options.file);
    } catch (err) {
      const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw new ProxyError('ERR_CONFIG', `--log-file: cannot open ${options.file} (${reason})`);
    }
  } else {
    sink = new FdSink(2);
  }
  const journal = options.journal ?? false;
  return new LineLogger(sink, options.level, '', { journal, timestamps: options.timestamps ?? !journal });
}
