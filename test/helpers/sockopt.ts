/**
 * Read a connected socket's options from the kernel, where Node has no getter for them: the socket's
 * file descriptor is handed to a child process (Node's documented stdio stream passing duplicates it
 * as fd 3) and perl's getsockopt(2) reads TCP_NODELAY, SO_KEEPALIVE and TCP_KEEPIDLE on it. perl and
 * its Socket module are in perl-base, which every Debian system has. Linux only (TCP_KEEPIDLE).
 */
import { spawn } from 'node:child_process';
import type { Socket } from 'node:net';

export interface KernelSocketOptions {
  noDelay: boolean;
  keepAlive: boolean;
  /** Seconds of idleness before the first keepalive probe. */
  keepIdleSeconds: number;
}

const SCRIPT = `
use strict;
use Socket qw(SOL_SOCKET SO_KEEPALIVE IPPROTO_TCP TCP_NODELAY TCP_KEEPIDLE);
open(my $s, '+<&=', 3) or die "fd 3: $!\\n";
my @v = map { my $o = getsockopt($s, $_->[0], $_->[1]); defined $o or die "getsockopt: $!\\n"; unpack('i', $o) }
  ([IPPROTO_TCP, TCP_NODELAY], [SOL_SOCKET, SO_KEEPALIVE], [IPPROTO_TCP, TCP_KEEPIDLE]);
print "@v\\n";
`;

/** Why kernelSocketOptions cannot work here, or undefined when it can. */
export function sockoptUnavailable(): string | undefined {
  return process.platform === 'linux' ? undefined : `reading socket options through perl needs Linux (TCP_KEEPIDLE), this is ${process.platform}`;
}

export function kernelSocketOptions(socket: Socket): Promise<KernelSocketOptions> {
  return new Promise((resolve, reject) => {
    const child = spawn('perl', ['-e', SCRIPT], { stdio: ['ignore', 'pipe', 'pipe', socket] });
    let out = '';
    let err = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.once('error', reject);
    child.once('close', (code) => {
      const m = /^(\d+) (\d+) (\d+)$/m.exec(out);
      if (code !== 0 || m === null) {
        reject(new Error(`perl getsockopt failed (exit ${code}): ${err.trim() || out.trim()}`));
        return;
      }
      resolve({ noDelay: m[1] !== '0', keepAlive: m[2] !== '0', keepIdleSeconds: Number(m[3]) });
    });
  });
}
