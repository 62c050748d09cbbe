/**
 * Benchmark child processes and their small IPC protocol.
 *
 * The component under test (the proxy, or the plain TCP relay used as a baseline) runs in a child
 * process of its own, so its CPU time and memory are its own; the servers it reaches run in another
 * child (bench/peers-process.ts) and the clients in the bench process, so that every hop crosses a
 * process boundary as it does in real use. The child reports {port} once listening, then answers
 * requests by id: 'cpu' (process.cpuUsage), 'mem' (process.memoryUsage after global.gc(), which
 * needs --expose-gc), 'conns' (live connections, when the child can count them), 'stats' (counters
 * of the child's own, e.g. socket reads or flood connections), 'trace' (timestamped events, when the
 * child records them) and 'stop' (close and exit, so that a --cpu-prof profile gets written).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { readFileSync } from 'node:fs';

export type ChildOp = 'cpu' | 'mem' | 'conns' | 'stats' | 'trace' | 'stop';

/** One timestamped event of a traced child: hrtime in ns (CLOCK_MONOTONIC, the same clock in every process), what, bytes. */
export type TraceEvent = [t: number, what: string, bytes: number];

export interface ChildReply {
  cpu?: NodeJS.CpuUsage;
  mem?: NodeJS.MemoryUsage;
  conns?: number;
  stats?: Record<string, number>;
  trace?: TraceEvent[];
}

interface Request {
  id: number;
  op: ChildOp;
}

type ParentMessage = { type: 'ready'; port: number; ports: Record<string, number> } | ({ type: 'reply'; id: number } & ChildReply);

// --- child side --------------------------------------------------------------------------------

/**
 * Child side: announce the port (and any other named ports) and serve requests. `count` returns
 * live connections; `stats` any counters of the child's own; `close` stops listening.
 */
export function serveParent(
  port: number,
  hooks: {
    ports?: Record<string, number>;
    count?: () => number;
    stats?: () => Record<string, number>;
    /** The events recorded since the last call (bench/setup-trace.ts). */
    trace?: () => TraceEvent[];
    close: () => Promise<void>;
  },
): void {
  const send = (m: ParentMessage): void => {
    process.send?.(m);
  };
  process.on('message', (raw: unknown) => {
    const req = raw as Request;
    switch (req.op) {
      case 'cpu':
        send({ type: 'reply', id: req.id, cpu: process.cpuUsage() });
        break;
      case 'mem': {
        const gc = (globalThis as { gc?: () => void }).gc;
        // Twice: the first pass may only schedule finalizers that free external (Buffer) memory.
        gc?.();
        gc?.();
        send({ type: 'reply', id: req.id, mem: process.memoryUsage() });
        break;
      }
      case 'conns':
        send({ type: 'reply', id: req.id, conns: hooks.count?.() ?? -1 });
        break;
      case 'stats':
        send({ type: 'reply', id: req.id, stats: hooks.stats?.() ?? {} });
        break;
      case 'trace':
        send({ type: 'reply', id: req.id, trace: hooks.trace?.() ?? [] });
        break;
      case 'stop':
        void hooks.close().finally(() => {
          send({ type: 'reply', id: req.id });
          // Exit explicitly: the IPC channel would keep the process alive, and --cpu-prof writes on exit.
          setImmediate(() => process.exit(0));
        });
        break;
    }
  });
  // The parent died: nothing is left to measure.
  process.on('disconnect', () => process.exit(0));
  send({ type: 'ready', port, ports: hooks.ports ?? {} });
}

// --- parent side -------------------------------------------------------------------------------

export interface Child {
  port: number;
  /** Named ports, for a child that listens on several. */
  ports: Record<string, number>;
  pid: number;
  request(op: ChildOp): Promise<ChildReply>;
  /** Ask the child to close and exit; resolves when it has exited. */
  stop(): Promise<void>;
}

/** Extra node flags for every child, e.g. ['--cpu-prof', '--cpu-prof-dir=...'] (BENCH_CHILD_FLAGS, space separated). */
export function childFlagsFromEnv(): string[] {
  return (process.env.BENCH_CHILD_FLAGS ?? '').split(' ').filter((f) => f !== '');
}

/**
 * The proxy child runs with the GLIBC_TUNABLES of the systemd unit (as `npm start` does), so the
 * bench measures the daemon as it is deployed; BENCH_PROXY_MALLOC=glibc-defaults runs it without
 * (the "before" of bench/README.md). Other children keep the bench's environment.
 */
export function childEnv(script: URL): NodeJS.ProcessEnv {
  if (!script.pathname.endsWith('/proxy-process.js') || process.env.BENCH_PROXY_MALLOC === 'glibc-defaults') return process.env;
  const unit = readFileSync(new URL('../../contrib/systemd/bip324-proxy.service', import.meta.url), 'utf8');
  const tunables = /^Environment=GLIBC_TUNABLES=(\S+)$/m.exec(unit)?.[1];
  if (tunables === undefined) throw new Error('bench: no Environment=GLIBC_TUNABLES= line in contrib/systemd/bip324-proxy.service');
  return { ...process.env, GLIBC_TUNABLES: tunables };
}

/**
 * `wrap`: a command the child runs under, e.g. ['valgrind', '--tool=callgrind', ...]: it is
 * started as `wrap... node execArgv... script args...`.
 */
export async function startChild(script: URL, args: string[], execArgv: string[] = [], wrap: string[] = []): Promise<Child> {
  const flags = [...execArgv, ...childFlagsFromEnv()];
  const proc: ChildProcess = fork(script, args, {
    ...(wrap.length > 0 ? { execPath: wrap[0], execArgv: [...wrap.slice(1), process.execPath, ...flags] } : { execArgv: flags }),
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: childEnv(script),
  });
  const forkedAt = performance.now();
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const pending = new Map<number, (r: ChildReply) => void>();
  let nextId = 0;
  let ready = false;
  const { port, ports } = await new Promise<{ port: number; ports: Record<string, number> }>((resolve, reject) => {
    proc.once('error', reject);
    proc.once('exit', (code, signal) => {
      if (!ready) {
        const ms = (performance.now() - forkedAt).toFixed(0);
        reject(new Error(`${script.pathname} (pid ${proc.pid}) exited (code ${code}, signal ${signal}) ${ms} ms after fork, before listening`));
      }
    });
    proc.on('message', (raw: unknown) => {
      const m = raw as ParentMessage;
      if (m.type === 'ready') {
        ready = true;
        resolve(m);
      } else pending.get(m.id)?.(m);
    });
  });
  const request = (op: ChildOp): Promise<ChildReply> =>
    new Promise((resolve) => {
      const id = ++nextId;
      pending.set(id, (r) => {
        pending.delete(id);
        resolve(r);
      });
      proc.send({ id, op } satisfies Request);
    });
  return {
    port,
    ports,
    pid: proc.pid ?? -1,
    request,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const killer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
        void request('stop');
        await exited;
        clearTimeout(killer);
      }
    },
  };
}

/** CPU seconds (user + system) between two cpuUsage readings. */
export function cpuSeconds(a: NodeJS.CpuUsage, b: NodeJS.CpuUsage): number {
  return (b.user - a.user + (b.system - a.system)) / 1e6;
}
