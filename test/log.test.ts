import assert from 'node:assert/strict';
import fs, {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';

import { isProxyError } from '../src/errors.js';
import { createLogger, formatFields, isJournalStream } from '../src/log.js';
import type { LogLevel } from '../src/log.js';

/** A stream that keeps what it is given, one entry per write. */
function capture(): { stream: Writable; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { stream, lines };
}

const TIME = '\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z';

describe('log', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'bip324-log-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  describe('line format', () => {
    it('writes ISO time, the level padded to 5, the child fields, the message, then the fields, as one line', () => {
      const { stream, lines } = capture();
      const log = createLogger({ level: 'info', stream }).child({ conn: 12 });
      log.info('established', { peer: '1.2.3.4:8333', transport: 'v2' });
      assert.equal(lines.length, 1);
      assert.match(lines[0], new RegExp(`^${TIME} INFO  conn=12 established peer=1\\.2\\.3\\.4:8333 transport=v2\\n$`));
    });

    it('stamps the current time in UTC', () => {
      const { stream, lines } = capture();
      const before = Date.now();
      createLogger({ level: 'info', stream }).info('x');
      const stamped = Date.parse(lines[0].slice(0, 24));
      assert.ok(stamped >= before - 1 && stamped <= Date.now(), `${stamped} not within the call`);
      assert.equal(lines[0][23], 'Z');
    });

    it('labels every level with a 5-character name so messages line up', () => {
      const { stream, lines } = capture();
      const log = createLogger({ level: 'debug', stream });
      log.error('e');
      log.warn('w');
      log.info('i');
      log.debug('d');
      assert.deepEqual(
        lines.map((l) => l.slice(25)),
        ['ERROR e\n', 'WARN  w\n', 'INFO  i\n', 'DEBUG d\n'],
      );
    });

    it('writes a message without fields with no trailing space', () => {
      const { stream, lines } = capture();
      createLogger({ level: 'info', stream }).info('listening');
      assert.match(lines[0], new RegExp(`^${TIME} INFO  listening\\n$`));
    });

    it('quotes values with spaces, "=", quotes, backslashes, control characters or nothing, using JSON', () => {
      assert.equal(formatFields({ a: 'two words' }), ' a="two words"');
      assert.equal(formatFields({ a: 'k=v' }), ' a="k=v"');
      assert.equal(formatFields({ a: 'say "hi"' }), ' a="say \\"hi\\""');
      assert.equal(formatFields({ a: 'C:\\x' }), ' a="C:\\\\x"');
      assert.equal(formatFields({ a: 'line1\nline2' }), ' a="line1\\nline2"');
      assert.equal(formatFields({ a: 'tab\there' }), ' a="tab\\there"');
      assert.equal(formatFields({ a: '' }), ' a=""');
      assert.equal(formatFields({ a: '/Satoshi:27.0.0/' }), ' a=/Satoshi:27.0.0/');
      assert.equal(formatFields({ a: '[::1]:1324' }), ' a=[::1]:1324');
    });

    it('writes numbers, booleans and null bare and leaves undefined fields out', () => {
      assert.equal(formatFields({ n: 42, f: 1.5, t: true, no: false, z: null, u: undefined, last: 'x' }), ' n=42 f=1.5 t=true no=false z=null last=x');
    });

    it('keeps a message with a newline on one line, so a peer cannot forge a log line', () => {
      const { stream, lines } = capture();
      createLogger({ level: 'info', stream }).warn('bad\nINFO  forged\r\n');
      assert.equal(lines.length, 1);
      assert.equal(lines[0].split('\n').length, 2);
      assert.ok(lines[0].endsWith('WARN  bad\\nINFO  forged\\r\\n\n'));
      // Line breaks and nothing else, too.
      createLogger({ level: 'info', stream, timestamps: false }).warn('\r\n');
      assert.equal(lines[1], 'WARN  \\r\\n\n');
    });
  });

  describe('levels', () => {
    const cases: [LogLevel, string[]][] = [
      ['error', ['ERROR']],
      ['warn', ['ERROR', 'WARN ']],
      ['info', ['ERROR', 'WARN ', 'INFO ']],
      ['debug', ['ERROR', 'WARN ', 'INFO ', 'DEBUG']],
    ];
    for (const [level, shown] of cases) {
      it(`at level ${level} writes only ${shown.map((s) => s.trim()).join(', ')}`, () => {
        const { stream, lines } = capture();
        const log = createLogger({ level, stream });
        assert.equal(log.level, level);
        log.debug('d');
        log.info('i');
        log.warn('w');
        log.error('e');
        assert.deepEqual(lines.map((l) => l.slice(25, 30)).sort(), [...shown].sort());
      });
    }

    it('gives a child the level of its parent', () => {
      const { stream, lines } = capture();
      const child = createLogger({ level: 'warn', stream }).child({ conn: 1 });
      assert.equal(child.level, 'warn');
      child.info('hidden');
      child.warn('shown');
      assert.equal(lines.length, 1);
    });
  });

  describe('child loggers', () => {
    it('prefixes the child fields before the message and the call fields after it', () => {
      const { stream, lines } = capture();
      createLogger({ level: 'info', stream }).child({ conn: 7, front: 'socks5' }).info('closed', { reason: 'eof' });
      assert.ok(lines[0].endsWith('INFO  conn=7 front=socks5 closed reason=eof\n'), lines[0]);
    });

    it('accumulates fields through a child of a child, outer first', () => {
      const { stream, lines } = capture();
      createLogger({ level: 'info', stream }).child({ conn: 7 }).child({ side: 'remote', skip: undefined }).info('x');
      assert.ok(lines[0].endsWith('INFO  conn=7 side=remote x\n'), lines[0]);
    });

    it('quotes child field values like call fields', () => {
      const { stream, lines } = capture();
      createLogger({ level: 'info', stream }).child({ ua: '/a b/' }).info('x');
      assert.ok(lines[0].endsWith('INFO  ua="/a b/" x\n'), lines[0]);
    });

    it('leaves the parent without the child fields', () => {
      const { stream, lines } = capture();
      const root = createLogger({ level: 'info', stream });
      root.child({ conn: 1 });
      root.info('root');
      assert.ok(lines[0].endsWith('INFO  root\n'), lines[0]);
    });
  });

  describe('log file', () => {
    it('appends to an existing file instead of truncating it', () => {
      const file = join(dir, 'proxy.log');
      writeFileSync(file, 'old line\n');
      const log = createLogger({ level: 'info', file });
      log.info('new line', { n: 1 });
      const text = readFileSync(file, 'utf8');
      assert.match(text, new RegExp(`^old line\\n${TIME} INFO  new line n=1\\n$`));
    });

    it('has every line on disk as soon as the call returns', () => {
      const file = join(dir, 'proxy.log');
      const log = createLogger({ level: 'debug', file });
      for (let i = 0; i < 100; i++) {
        log.debug('line', { i });
        assert.equal(readFileSync(file, 'utf8').split('\n').length - 1, i + 1);
      }
    });

    it('after the file was renamed, reopen() writes to a new file at the original path', () => {
      const file = join(dir, 'proxy.log');
      const rotated = join(dir, 'proxy.log.1');
      const log = createLogger({ level: 'info', file });
      const child = log.child({ conn: 3 });
      log.info('before rotation');
      renameSync(file, rotated);
      log.info('after rename, before reopen');
      child.reopen();
      log.info('after reopen');
      child.info('child after reopen');
      const old = readFileSync(rotated, 'utf8');
      const fresh = readFileSync(file, 'utf8');
      assert.match(old, /INFO {2}before rotation\n.*INFO {2}after rename, before reopen\n$/s);
      assert.equal(old.split('\n').length - 1, 2);
      assert.match(fresh, new RegExp(`^${TIME} INFO  after reopen\\n${TIME} INFO  conn=3 child after reopen\\n$`));
    });

    it('keeps writing to the old file and logs why when the path cannot be reopened', () => {
      const sub = join(dir, 'logs');
      const moved = join(dir, 'logs-moved');
      mkdirSync(sub);
      const log = createLogger({ level: 'info', file: join(sub, 'proxy.log') });
      log.info('first');
      renameSync(sub, moved);
      log.reopen();
      log.info('second');
      const text = readFileSync(join(moved, 'proxy.log'), 'utf8');
      assert.match(text, /INFO {2}first\n.*ERROR cannot reopen log file file=\S+ error=.*ENOENT.*\n.*INFO {2}second\n$/s);
    });

    it('reopen() closes the descriptor of the rotated file', function () {
      if (!existsSync('/proc/self/fd')) this.skip();
      const file = join(dir, 'proxy.log');
      const rotated = join(dir, 'proxy.log.1');
      const log = createLogger({ level: 'info', file });
      // Which of our descriptors point at `path` (Linux /proc).
      const holding = (path: string): string[] =>
        readdirSync('/proc/self/fd').filter((fd) => {
          try {
            return readlinkSync(`/proc/self/fd/${fd}`) === path;
          } catch {
            return false; // the descriptor readdir itself used, closed by now
          }
        });
      assert.equal(holding(file).length, 1);
      renameSync(file, rotated);
      log.reopen();
      assert.deepEqual(holding(rotated), []);
      assert.equal(holding(file).length, 1);
      log.reopen();
      assert.equal(holding(file).length, 1, 'a second reopen does not leak the first new descriptor');
    });

    // A full non-blocking pipe (stderr handed down by a parent) answers a write with a part of it or
    // EAGAIN: writes are told `fail` (throw that code) or a number of bytes to take at most, per call.
    for (const [what, script, written, calls] of [
      ['7 bytes at a time: the whole line, in order', () => 7, true, 3],
      ['EAGAIN 3 times: retried, the whole line', (n: number) => (n <= 3 ? 'EAGAIN' : 100), true, 4],
      ['EAGAIN 150 times: dropped after 100 retries', (n: number) => (n <= 150 ? 'EAGAIN' : 100), false, 101],
      ['EIO once: dropped at once', (n: number) => (n <= 1 ? 'EIO' : 100), false, 1],
    ] as const) {
      it(`writes a line to its file however the descriptor takes it: ${what}`, () => {
        const file = join(dir, 'proxy.log');
        const log = createLogger({ level: 'info', file, timestamps: false });
        const real = fs.writeSync;
        let n = 0;
        fs.writeSync = ((fd: number, buffer: Buffer, offset: number) => {
          n++;
          const step = script(n);
          if (typeof step === 'string') throw Object.assign(new Error(step), { code: step });
          return real(fd, buffer, offset, Math.min(step, buffer.length - offset));
        }) as typeof fs.writeSync;
        syncBuiltinESMExports();
        try {
          log.info('partial writes'); // 'INFO  partial writes\n': 21 bytes
        } finally {
          fs.writeSync = real;
          syncBuiltinESMExports();
        }
        assert.equal(readFileSync(file, 'utf8'), written ? 'INFO  partial writes\n' : '');
        assert.equal(n, calls);
      });
    }

    it('refuses a log file that cannot be opened with ERR_CONFIG naming --log-file', () => {
      assert.throws(
        () => createLogger({ level: 'info', file: join(dir, 'missing-dir', 'proxy.log') }),
        (err: unknown) => isProxyError(err, 'ERR_CONFIG') && /--log-file/.test(err.message) && /ENOENT/.test(err.message),
      );
    });

    it('treats reopen() as a no-op when writing to a stream', () => {
      const { stream, lines } = capture();
      const log = createLogger({ level: 'info', stream });
      log.reopen();
      log.info('still here');
      assert.equal(lines.length, 1);
    });
  });

  describe('systemd journal', () => {
    it('starts each line with its syslog priority, <3> error, <4> warn, <6> info, <7> debug, and no time', () => {
      const { stream, lines } = capture();
      const log = createLogger({ level: 'debug', stream, journal: true });
      log.error('e', { code: 'ERR_X' });
      log.warn('w');
      log.child({ conn: 7 }).info('i');
      log.debug('d');
      assert.deepEqual(lines, ['<3>ERROR e code=ERR_X\n', '<4>WARN  w\n', '<6>INFO  conn=7 i\n', '<7>DEBUG d\n']);
    });

    it('adds the time after the priority when timestamps are asked for', () => {
      const { stream, lines } = capture();
      createLogger({ level: 'info', stream, journal: true, timestamps: true }).warn('w');
      assert.match(lines[0], new RegExp(`^<4>${TIME} WARN  w\\n$`));
    });

    it('writes no priority outside the journal, and no time when timestamps are turned off', () => {
      const { stream, lines } = capture();
      createLogger({ level: 'info', stream, timestamps: false }).info('i');
      createLogger({ level: 'info', stream }).info('j');
      assert.equal(lines[0], 'INFO  i\n');
      assert.match(lines[1], new RegExp(`^${TIME} INFO  j\\n$`));
    });

    it('takes a descriptor for the journal only when JOURNAL_STREAM names its own device and inode', () => {
      const path = join(dir, 'stream');
      writeFileSync(path, '');
      const fd = openSync(path, 'a');
      try {
        const st = statSync(path, { bigint: true });
        assert.equal(isJournalStream({ JOURNAL_STREAM: `${st.dev}:${st.ino}` }, fd), true);
        // Inherited by a process whose stderr went elsewhere (a terminal in a desktop session):
        assert.equal(isJournalStream({ JOURNAL_STREAM: `${st.dev}:${st.ino + 1n}` }, fd), false);
        assert.equal(isJournalStream({ JOURNAL_STREAM: `${st.dev + 1n}:${st.ino}` }, fd), false);
        assert.equal(isJournalStream({}, fd), false);
        assert.equal(isJournalStream({ JOURNAL_STREAM: 'garbage' }, fd), false);
        // The whole variable is device:inode, nothing before or after.
        assert.equal(isJournalStream({ JOURNAL_STREAM: `x${st.dev}:${st.ino}` }, fd), false);
        assert.equal(isJournalStream({ JOURNAL_STREAM: `${st.dev}:${st.ino}x` }, fd), false);
      } finally {
        closeSync(fd);
      }
      // A descriptor that is not open (stderr closed by whoever started us) is not the journal.
      const st = statSync(path, { bigint: true });
      assert.equal(isJournalStream({ JOURNAL_STREAM: `${st.dev}:${st.ino}` }, fd), false);
    });
  });

  it('never throws, even when the stream underneath does', () => {
    const broken = new Writable({
      write() {
        throw new Error('disk on fire');
      },
    });
    const log = createLogger({ level: 'debug', stream: broken });
    assert.doesNotThrow(() => {
      log.error('e');
      log.child({ a: 1 }).debug('d', { b: 'c d' });
    });
    const ended = new Writable({ write: (_c, _e, done) => done() });
    ended.destroy();
    assert.doesNotThrow(() => createLogger({ level: 'info', stream: ended }).info('after destroy'));
  });
});
