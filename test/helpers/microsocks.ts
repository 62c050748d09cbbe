/**
 * A real SOCKS5 proxy for tests: microsocks (https://github.com/rofl0r/microsocks), installed with
 * `apt-get install -y microsocks`. Listens on 127.0.0.1 on a free port; stop() kills it and waits.
 * A missing binary is an error with the install command, never a silent skip.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { closedPort } from './node.js';

export interface Microsocks {
  port: number;
  stop(): Promise<void>;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

function waitExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

async function startOnce(opts: { user?: string; pass?: string }): Promise<Microsocks> {
  const port = await closedPort();
  const args = ['-i', '127.0.0.1', '-p', String(port)];
  if (opts.user !== undefined) args.push('-u', opts.user);
  if (opts.pass !== undefined) args.push('-P', opts.pass);
  const child = spawn('microsocks', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  let spawnError: Error | undefined;
  child.once('error', (err: NodeJS.ErrnoException) => {
    spawnError = err.code === 'ENOENT' ? new Error('microsocks is not installed; these tests need it: apt-get update && apt-get install -y microsocks') : err;
  });

  const deadline = Date.now() + 5000;
  for (;;) {
    if (spawnError) throw spawnError;
    if (child.exitCode !== null) throw new Error(`microsocks exited with ${child.exitCode}: ${stderr.trim()}`);
    if (await canConnect(port)) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`microsocks did not listen on 127.0.0.1:${port} within 5 s: ${stderr.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    port,
    async stop(): Promise<void> {
      const exited = waitExit(child);
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Start microsocks on 127.0.0.1, optionally requiring a username and password (-u/-P). */
export async function startMicrosocks(opts: { user?: string; pass?: string } = {}): Promise<Microsocks> {
  // The free port can be taken between our probe and microsocks' bind; try a few times.
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(opts);
    } catch (err) {
      if (err instanceof Error && err.message.startsWith('microsocks is not installed')) throw err;
      lastError = err;
    }
  }
  throw lastError;
}
