/**
 * --shape and --shape-rate (issue 13): values, defaults, refusals that name the option, and the
 * same keys in the configuration file. Kept apart from config.test.ts so that the two can move
 * independently.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { HELP_TEXT, loadConfig } from '../src/config/index.js';
import { isProxyError } from '../src/errors.js';
import { tempDir } from './helpers/tmp.js';

const NO_ENV = {};
const NO_SYSTEM_FILE = '/nonexistent/bip324-proxy.conf';

function shaping(argv: string[]): unknown {
  return loadConfig(argv, NO_ENV, NO_SYSTEM_FILE).config.shaping;
}

function refused(argv: string[], ...patterns: RegExp[]): void {
  assert.throws(
    () => loadConfig(argv, NO_ENV, NO_SYSTEM_FILE),
    (e: unknown) => isProxyError(e, 'ERR_CONFIG') && patterns.every((p) => p.test(e.message)),
  );
}

describe('config: --shape and --shape-rate', () => {
  it('shaping is off unless asked for', () => {
    assert.equal(shaping([]), undefined);
    assert.equal(shaping(['--shape', 'off']), undefined);
    assert.equal(shaping(['--shape', 'off', '--shape-rate', '4096']), undefined);
  });

  it('pad and cover, with a cover rate of 1024 bytes per second unless --shape-rate says otherwise', () => {
    assert.deepEqual(shaping(['--shape', 'pad']), { mode: 'pad', rate: 1024 });
    assert.deepEqual(shaping(['--shape', 'cover']), { mode: 'cover', rate: 1024 });
    assert.deepEqual(shaping(['--shape=cover', '--shape-rate=4096']), { mode: 'cover', rate: 4096 });
    assert.deepEqual(shaping(['--shape', 'cover', '--shape-rate', '1048576']), { mode: 'cover', rate: 1048576 });
  });

  it('a mode that does not exist is refused, naming the option and the modes', () => {
    refused(['--shape', 'on'], /--shape/, /'on'/, /off, pad, cover/);
    refused(['--shape', 'COVER'], /--shape/);
  });

  it('a rate that is not a whole number of bytes from 1 to 1048576 is refused, naming --shape-rate', () => {
    for (const bad of ['0', '-5', '1.5', '1k', '1048577', '']) refused(['--shape', 'cover', `--shape-rate=${bad}`], /--shape-rate/);
  });

  it('both are keys of the configuration file, where the command line wins', () => {
    const dir = tempDir('bip324-shape-');
    const file = join(dir, 'bip324-proxy.conf');
    writeFileSync(file, 'shape=cover\nshape-rate=2048\n');
    assert.deepEqual(shaping(['--config', file]), { mode: 'cover', rate: 2048 });
    assert.deepEqual(shaping(['--config', file, '--shape', 'pad']), { mode: 'pad', rate: 2048 });
    assert.equal(shaping(['--config', file, '--shape', 'off']), undefined);
    writeFileSync(file, 'shape=loud\n');
    refused(['--config', file], /shape \(in .*bip324-proxy\.conf\)/, /'loud'/);
  });

  it('--help describes both', () => {
    assert.match(HELP_TEXT, /--shape off\|pad\|cover\n/);
    assert.match(HELP_TEXT, /--shape-rate BYTES\n/);
  });
});
