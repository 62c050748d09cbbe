import assert from 'node:assert/strict';

import { ConfigSyntaxError, parseConfigText } from '../../src/config/file-syntax.js';
import type { ConfigLine } from '../../src/config/file-syntax.js';

/** The value of the only line of `text`, which must parse to exactly one key. */
function valueOf(text: string): string | true {
  const lines = parseConfigText(text);
  assert.equal(lines.length, 1, JSON.stringify(lines));
  return lines[0].value;
}

/** One test per [line, the value it gives, why] row. */
function itReads(cases: readonly [string, string, string][]): void {
  for (const [line, value, why] of cases) {
    it(`reads ${why}: ${line}`, () => {
      assert.equal(valueOf(line), value);
    });
  }
}

function syntaxError(text: string, line: number, message: string): void {
  assert.throws(
    () => parseConfigText(text),
    (err: unknown) => {
      assert.ok(err instanceof ConfigSyntaxError, String(err));
      assert.equal(err.line, line);
      assert.equal(err.message, message);
      return true;
    },
  );
}

// The rules the sample configuration and the man page's CONFIGURATION FILE section document.
describe('config/file-syntax', () => {
  describe('lines', () => {
    it('skips blank and comment lines, indented ones too, and numbers lines from 1', () => {
      const text = ['# comment', '', '   ', '  # indented comment', '\t; indented semicolon comment', 'network=main', '; comment', 'v2-only'].join('\n');
      const expected: ConfigLine[] = [
        { key: 'network', value: 'main', line: 6 },
        { key: 'v2-only', value: true, line: 8 },
      ];
      assert.deepEqual(parseConfigText(text), expected);
    });

    it('reads CRLF line endings like LF ones', () => {
      assert.deepEqual(parseConfigText('network=main\r\nlisten=127.0.0.1:1324\r\n'), [
        { key: 'network', value: 'main', line: 1 },
        { key: 'listen', value: '127.0.0.1:1324', line: 2 },
      ]);
    });

    it('keeps a byte order mark inside a value when the file has none at its start', () => {
      assert.deepEqual(parseConfigText('user-agent=a\uFEFFb\n'), [{ key: 'user-agent', value: 'a\uFEFFb', line: 1 }]);
    });

    it('drops a byte order mark at the start of the file only', () => {
      assert.deepEqual(parseConfigText('\uFEFFnetwork=main\nuser-agent=a\uFEFFb\n'), [
        { key: 'network', value: 'main', line: 1 },
        { key: 'user-agent', value: 'a\uFEFFb', line: 2 },
      ]);
    });

    it('keeps repeated keys, in order, for the caller to judge', () => {
      assert.deepEqual(parseConfigText('listen=127.0.0.1:1\nlisten[]=127.0.0.1:2\n'), [
        { key: 'listen', value: '127.0.0.1:1', line: 1 },
        { key: 'listen', value: '127.0.0.1:2', line: 2 },
      ]);
    });

    it('trims blanks around the key and before the value', () => {
      assert.deepEqual(parseConfigText('  network \t=  main  \n'), [{ key: 'network', value: 'main', line: 1 }]);
    });
  });

  describe('a key alone', () => {
    it('is an on/off option set on, also with a comment after a blank', () => {
      assert.deepEqual(parseConfigText('v2-only\nallow-remote  # on\ndaemon\t; on\n'), [
        { key: 'v2-only', value: true, line: 1 },
        { key: 'allow-remote', value: true, line: 2 },
        { key: 'daemon', value: true, line: 3 },
      ]);
    });

    it('keeps a # or ; that does not follow a blank', () => {
      assert.deepEqual(parseConfigText('v2-only#x\n'), [{ key: 'v2-only#x', value: true, line: 1 }]);
    });
  });

  describe('unquoted values', () => {
    const cases: [string, string, string][] = [
      ['user-agent=/My Agent:1.0/', '/My Agent:1.0/', 'blanks inside the value'],
      ['upstream-proxy=socks5://alice:s3cr#t@host:9050', 'socks5://alice:s3cr#t@host:9050', 'a # not after a blank'],
      ['upstream-proxy=socks5://alice:s3cr;t@host:9050', 'socks5://alice:s3cr;t@host:9050', 'a ; not after a blank'],
      ['user-agent=a# b', 'a# b', 'a # followed (not preceded) by a blank'],
      ['network=main # the default', 'main', 'a # comment after a blank'],
      ['network=main\t; the default', 'main', 'a ; comment after a tab'],
      ['network= # main', '', 'a # comment right after the "=" and a blank (an empty value)'],
      ['network=\t;main', '', 'a ; comment right after the "=" and a tab (an empty value)'],
      ['user-agent=#main', '#main', 'a # right after the "=" without a blank'],
      ['user-agent=a \\# b', 'a # b', 'an escaped # after a blank'],
      ['user-agent=a \\; b', 'a ; b', 'an escaped ; after a blank'],
      ['user-agent=a\\\\b', 'a\\b', 'an escaped backslash'],
      ['user-agent=a\\nb', 'a\\nb', 'a backslash before any other character'],
      ['user-agent=say "hi"', 'say "hi"', 'double quotes that do not open the value'],
    ];
    itReads(cases);
  });

  describe('quoted values', () => {
    const cases: [string, string, string][] = [
      ['user-agent="a #b ;c "', 'a #b ;c ', 'blanks, # and ; as written'],
      ['user-agent=  "x"', 'x', 'quotes after blanks'],
      ['user-agent="a\\"b"', 'a"b', 'an escaped quote'],
      ['user-agent="a\\\\b"', 'a\\b', 'an escaped backslash'],
      ['user-agent="\\\\"', '\\', 'a value that is one escaped backslash'],
      ['user-agent="\\n"', '\\n', 'a backslash before any other character, first in the value'],
      ['user-agent="x"  # comment', 'x', 'a # comment after the closing quote'],
      ['user-agent="x"  ; comment', 'x', 'a ; comment after the closing quote'],
      ['user-agent=""', '', 'an empty value'],
    ];
    itReads(cases);

    it('refuses a value without its closing quote', () => {
      syntaxError('network=main\nuser-agent="abc\n', 2, 'a quoted value has no closing "');
      syntaxError('user-agent="abc\\"', 1, 'a quoted value has no closing "');
    });

    it('refuses text after the closing quote', () => {
      syntaxError('\n\nuser-agent="abc" junk', 3, 'unexpected "junk" after the closing quote');
    });
  });

  describe('refused lines', () => {
    it('refuses a [section] header, naming it', () => {
      syntaxError('network=main\n[main]\n', 2, 'sections like [main] are not supported');
      syntaxError('[main\n', 1, 'sections like [main] are not supported');
    });

    it('refuses a line that starts with "="', () => {
      syntaxError('network=main\n=main\n', 2, 'a line starts with "=" (expected key=value)');
      syntaxError('  = main\n', 1, 'a line starts with "=" (expected key=value)');
    });
  });
});
