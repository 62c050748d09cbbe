/**
 * Instructions per handshake step, counted by valgrind (callgrind), so that two builds can be
 * compared on a busy machine: an instruction count does not depend on what else is running.
 *
 * For each step of bench/handshake.ts it runs `node dist/bench/handshake.js --step NAME` under
 * valgrind twice, with the same prepared inputs and warm-up, once running the step 0 times and
 * once `count` times (10x for the steps of a few microseconds); (instructions of the second -
 * first) / count is the cost of one step.
 * Process start, module loading and preparation cancel out.
 *
 *   node dist/bench/callgrind.js [--count N] [--build DIR] [substring ...]
 *
 * --build DIR runs DIR/dist/bench/handshake.js instead (an older build, for a before/after).
 * Substrings select steps by name. Takes about 20 s per step and run.
 *
 * Caveat: under valgrind OpenSSL may see a different CPU (valgrind emulates CPUID) and choose
 * other code paths than natively, so its counts compare OpenSSL with OpenSSL and JS with JS best;
 * the CPU-time table of bench/handshake.ts is the one for absolute figures.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { fastStep, stepNames } from './handshake.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

const count = Number(arg('--count', '40'));
const build = arg('--build', '');
const script = build === '' ? fileURLToPath(new URL('./handshake.js', import.meta.url)) : `${build}/dist/bench/handshake.js`;
const skip = new Set(['--count', '--build']);
const filters = process.argv.slice(2).filter((a, i, all) => !skip.has(a) && !skip.has(all[i - 1] ?? ''));

function instructions(step: string, n: number, prepare: number): number {
  const r = spawnSync(
    'valgrind',
    ['--tool=callgrind', '--callgrind-out-file=/dev/null', process.execPath, script, '--step', step, '--count', String(n), '--prepare', String(prepare)],
    { encoding: 'utf8', maxBuffer: 1 << 26 },
  );
  const m = /Collected : (\d+)/.exec(r.stderr);
  if (r.status !== 0 || m === null) throw new Error(`valgrind failed for ${step} (status ${String(r.status)}):\n${r.stderr.slice(-2000)}`);
  return Number(m[1]);
}

// The list comes from the build under test, so steps an older build lacks are not asked for.
const listed = spawnSync(process.execPath, [script, '--list'], { encoding: 'utf8' });
const names = listed.status === 0 ? listed.stdout.trim().split('\n') : stepNames();
const chosen = names.filter((n) => filters.length === 0 || filters.some((f) => n.includes(f)));
console.log(`callgrind, ${count} runs per step (${10 * count} for the fast ones), ${script}`);
for (const name of chosen) {
  const n = fastStep(name) ? 10 * count : count;
  const base = instructions(name, 0, n);
  const total = instructions(name, n, n);
  const per = (total - base) / n;
  console.log(`${name.padEnd(72)} ${(per / 1e6).toFixed(3).padStart(9)} M instructions`);
}
