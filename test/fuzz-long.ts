/**
 * `npm run fuzz -- [--seconds N] [--cases N] [--seed N] [--batch N] [--concurrency N] [--target NAME]...`
 * `npm run fuzz -- --replay TARGET:INDEX:SEED` (the line every problem ends with)
 *
 * The fuzz of test/hardening/fuzz.test.ts without its CI bound: the same targets (test/helpers/fuzz/targets.ts),
 * round robin in batches until the time (default 60 s) or case budget runs out. After every batch, as
 * in the test: a good connection end to end through each proxy, no leaked sockets or timers, every
 * refusal logged with code and reason. Prints a summary of outcomes per target and every problem;
 * exits 1 when there was any.
 */
import { checkHealthy, startFuzzEnv } from './helpers/fuzz/env.js';
import { logProblems } from './helpers/fuzz/log-index.js';
import { Rng } from './helpers/fuzz/rng.js';
import { type CaseReport, FUZZ_TARGETS, fuzzTarget, runBatch, tally } from './helpers/fuzz/targets.js';
import { expectNoLeaks, settle } from './helpers/leaks.js';

interface Args {
  seconds: number;
  cases: number;
  seed: number;
  batch: number;
  concurrency: number;
  targets: string[];
  replay?: { target: string; index: number; seed: number };
}

function parseArgs(argv: string[]): Args {
  const args: Args = { seconds: 60, cases: Infinity, seed: Date.now() >>> 0, batch: 60, concurrency: 12, targets: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--seconds') args.seconds = Number(value());
    else if (a === '--cases') args.cases = Number(value());
    else if (a === '--seed') args.seed = Number(value()) >>> 0;
    else if (a === '--batch') args.batch = Number(value());
    else if (a === '--concurrency') args.concurrency = Number(value());
    else if (a === '--target') args.targets.push(value());
    else if (a === '--replay') {
      const [target, index, seed] = value().split(':');
      args.replay = { target, index: Number(index), seed: Number(seed) };
    } else if (/^\d+$/.test(a)) args.seconds = Number(a);
    else throw new Error(`unknown argument ${a}; see the header of test/fuzz-long.ts`);
  }
  for (const [k, v] of Object.entries(args)) if (typeof v === 'number' && !(v > 0)) throw new Error(`--${k} must be a positive number`);
  return args;
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const env = await startFuzzEnv();
  try {
    if (args.replay !== undefined) {
      const { target, index, seed } = args.replay;
      const report = await fuzzTarget(target).run(env, new Rng(seed), index);
      console.log(JSON.stringify({ ...report, seed }, null, 2));
      console.log(env.logsOf(env.direct).logs.concat(env.logsOf(env.viaSink).logs).join('\n'));
      return report.problems.length === 0 ? 0 : 1;
    }
    const targets = args.targets.length > 0 ? args.targets.map(fuzzTarget) : [...FUZZ_TARGETS];
    const master = new Rng(args.seed);
    const nextIndex = new Map(targets.map((t) => [t.name, 0]));
    const reports = new Map<string, CaseReport[]>(targets.map((t) => [t.name, []]));
    const problems: string[] = [];
    const started = Date.now();
    let total = 0;
    console.log(`fuzz: seed ${args.seed}, ${args.seconds} s, targets ${targets.map((t) => t.name).join(', ')}`);
    await checkHealthy(env);
    const baseline = await settle();
    for (let round = 0; Date.now() - started < args.seconds * 1000 && total < args.cases; round++) {
      const target = targets[round % targets.length];
      const from = nextIndex.get(target.name)!;
      const count = Math.min(args.batch, args.cases - total);
      const seed = master.u32();
      const batch = await runBatch(env, target, { from, count, seed, concurrency: args.concurrency });
      nextIndex.set(target.name, from + count);
      total += count;
      reports.get(target.name)!.push(...batch.map((r) => ({ ...r, problems: [] })));
      problems.push(...batch.flatMap((r) => r.problems));
      try {
        await checkHealthy(env);
      } catch (err) {
        problems.push(`after ${target.name} batch seed ${seed}: no good connection: ${(err as Error).message}`);
      }
      for (const proxy of [env.direct, env.viaSink]) {
        problems.push(...logProblems(proxy.logs), ...env.logsOf(proxy).duplicateEnds.map((l) => `two end lines: ${l}`));
      }
      try {
        await expectNoLeaks(baseline);
      } catch (err) {
        problems.push(`after ${target.name} batch seed ${seed}: ${(err as Error).message}`);
      }
      env.trim();
      const mb = (process.memoryUsage().rss / 2 ** 20).toFixed(0);
      console.log(
        `  ${((Date.now() - started) / 1000).toFixed(1)}s ${target.name} ${from}..${from + count - 1}: ${JSON.stringify([...tally(batch)])} rss=${mb}MB problems=${problems.length}`,
      );
    }
    console.log(`\nfuzz summary: ${total} cases in ${((Date.now() - started) / 1000).toFixed(1)} s, seed ${args.seed}`);
    for (const t of targets) {
      const list = reports.get(t.name)!;
      const outcomes = [...tally(list)].sort((a, b) => b[1] - a[1]).map(([o, n]) => `${o}=${n}`);
      console.log(`  ${t.name.padEnd(20)} ${String(list.length).padStart(6)} cases  ${outcomes.join(' ')}`);
    }
    console.log(`problems: ${problems.length}`);
    for (const p of problems.slice(0, 100)) console.log(`  ${p}`);
    if (problems.length > 100) console.log(`  ... and ${problems.length - 100} more`);
    return problems.length === 0 ? 0 : 1;
  } finally {
    await env.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(2);
  },
);
