/**
 * Outbound connections to the remote peer: direct TCP, or CONNECT through an upstream SOCKS5 proxy
 * (RFC 1928 §4, RFC 1929; in practice Tor's SOCKSPort) using the npm `socks` client.
 *
 * What Tor's SOCKSPort and the `socks` client (SocksClient.createConnection) make us do:
 * - We open the TCP connection to the proxy ourselves and hand it to `socks` as `existing_socket`:
 *   `socks` has no AbortSignal and its own timer is never cleared, so owning the socket is the only
 *   way to cancel, and our one timer covers the whole dial (TCP connect + SOCKS handshake).
 * - With a proxy, names and `.onion` go to it as ATYP 03 and are never resolved here. A `.onion`
 *   with no proxy is refused before anything is dialed or resolved.
 * - Credentials are Tor stream-isolation tokens: pass the client's on unchanged, or make fresh random
 *   ones per dial, never a `<torS0X>`-prefixed name (Tor prop 351 gives those a meaning).
 * - `socks` reports failures as message strings only; they are mapped back to our stable codes here.
 * - `socks` re-emits bytes that arrived with the CONNECT reply on a setImmediate of its own and then
 *   resumes the socket. dial() catches them and hands the socket over paused with them unshifted,
 *   so the caller may attach its reader whenever it is ready and loses nothing.
 */

import { createHash, randomBytes } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';

import { SocksClient, SocksClientError } from 'socks';

import { ProxyError, type ErrorCode } from '../errors.js';
import { MAX_CREDENTIAL_BYTES } from '../limits.js';
import { formatHostPort, type Destination } from '../address.js';
import { connectTransient } from '../transient-reads.js';

export interface ProxyEndpoint {
  host: string;
  port: number;
  username?: string;
  password?: string;
}

export interface Credentials {
  username: string;
  password: string;
}

export interface DialOptions {
  destination: Destination;
  /** Every outbound connection goes through it. */
  upstreamProxy?: ProxyEndpoint;
  /** `.onion` only; default: upstreamProxy. */
  onionProxy?: ProxyEndpoint;
  /**
   * Passed to the upstream proxy (the client's, or random ones chosen by the caller). Credentials in
   * the proxy URL take precedence: they are what that proxy requires. When neither is present (or both
   * fields are empty) randomCredentials() is used for this dial.
   */
  credentials?: Credentials;
  /** Whole dial, TCP connect + SOCKS handshake (callers pass --connect-timeout: below Core's 20 s). */
  timeoutMs: number;
  /** Abort destroys the socket and rejects. */
  signal?: AbortSignal;
  /**
   * A direct dial (no proxy for this destination) reads into the shared buffer of
   * transient-reads.ts: its bytes go to a sink (setSink), never to 'data'. Ignored through a proxy.
   */
  transientReads?: boolean;
}

/** TCP keepalive probe delay: a dead peer behind NAT is noticed in minutes, not the OS default of 2 h. */
const KEEPALIVE_DELAY_MS = 60_000;

/** 16 random bytes as hex for both, like lnd/btcd (hex never starts with "<torS0X>"). */
export function randomCredentials(): Credentials {
  return { username: randomBytes(16).toString('hex'), password: randomBytes(16).toString('hex') };
}

/** Credentials to hand to the proxy for this dial. */
function chooseCredentials(proxy: ProxyEndpoint, given: Credentials | undefined): Credentials {
  if (proxy.username || proxy.password) return { username: proxy.username ?? '', password: proxy.password ?? '' };
  if (given && (given.username || given.password)) return { username: fitCredential(given.username), password: fitCredential(given.password) };
  return randomCredentials();
}

/**
 * `socks` writes credentials as UTF-8 with a one-byte length and throws (inside a socket event
 * handler, so uncatchable) past 255 bytes. Our server hands over latin1-decoded bytes, which can grow
 * when re-encoded; a too-long value is replaced by its hash so it stays a stable, distinct token.
 */
function fitCredential(value: string): string {
  if (Buffer.byteLength(value) <= MAX_CREDENTIAL_BYTES) return value;
  return createHash('sha256').update(value, 'latin1').digest('hex');
}

/** The errno of a failed connect; of a happy-eyeballs AggregateError, that of the last address tried. */
function errnoOf(err: unknown): string | undefined {
  if (err instanceof AggregateError && err.errors.length > 0) return errnoOf(err.errors[err.errors.length - 1]);
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** A TCP-level failure reaching the destination directly. */
function directError(err: unknown, where: string): ProxyError {
  const errno = errnoOf(err);
  const msg = `connect to ${where} failed: ${err instanceof Error ? err.message : String(err)}`;
  let code: ErrorCode;
  switch (errno) {
    case 'ECONNREFUSED':
    case 'ECONNRESET':
      code = 'ERR_DIAL_REFUSED';
      break;
    case 'EHOSTUNREACH':
    case 'EHOSTDOWN':
    case 'ENETUNREACH':
    case 'ENETDOWN':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
    case 'EADDRNOTAVAIL':
      code = 'ERR_DIAL_UNREACHABLE';
      break;
    case 'ETIMEDOUT':
      code = 'ERR_DIAL_TIMEOUT';
      break;
    default:
      code = 'ERR_DIAL_FAILED';
  }
  // A name with several addresses fails with an AggregateError whose own code is the first attempt's:
  // put the errno mapped above in front, so the SOCKS5 reply (repForError) follows the same attempt.
  const cause = err instanceof AggregateError && errno !== undefined ? errnoCause(errno, err) : err;
  return new ProxyError(code, msg, { cause });
}

/** An errno-carrying cause so repForError can tell "network unreachable" (03) from "host unreachable" (04). */
function errnoCause(errno: string, cause: unknown): Error {
  return Object.assign(new Error(errno, { cause }), { code: errno });
}

/** Map the message of a SocksClientError (the library gives no code) to ours. */
function socksError(err: unknown, proxyName: string, where: string): ProxyError {
  const message = err instanceof Error ? err.message : String(err);
  const rejected = /^Socks5 proxy rejected connection - (.*)$/.exec(message);
  if (rejected) {
    const reason = rejected[1];
    const text = `${proxyName} could not connect to ${where}: ${reason}`;
    switch (reason) {
      case 'ConnectionRefused':
        return new ProxyError('ERR_DIAL_REFUSED', text, { cause: err });
      case 'HostUnreachable':
        return new ProxyError('ERR_DIAL_UNREACHABLE', text, { cause: err });
      case 'NetworkUnreachable':
        return new ProxyError('ERR_DIAL_UNREACHABLE', text, { cause: errnoCause('ENETUNREACH', err) });
      case 'TTLExpired':
        return new ProxyError('ERR_DIAL_TIMEOUT', text, { cause: err });
      case 'NotAllowed':
        return new ProxyError('ERR_DIAL_NOT_ALLOWED', `${proxyName} refused ${where} by its policy`, { cause: err });
      case 'undefined':
        // Tor's extended onion-service errors (F0-F7, with ExtendedErrors) arrive nameless: descriptor
        // not found, intro/rendezvous failed, bad address. All mean the onion peer cannot be reached.
        return new ProxyError('ERR_DIAL_UNREACHABLE', `${proxyName} could not reach ${where} (onion service error)`, { cause: err });
      default:
        // Failure (01), CommandNotSupported, AddressNotSupported: the proxy failed, not the peer.
        return new ProxyError('ERR_UPSTREAM_PROXY', text, { cause: err });
    }
  }
  if (message === 'Proxy connection timed out') {
    return new ProxyError('ERR_DIAL_TIMEOUT', `${proxyName} did not connect to ${where} in time`, { cause: err });
  }
  if (err instanceof SocksClientError) {
    // Auth refused, no acceptable method, malformed replies, the proxy closing or resetting mid-handshake.
    return new ProxyError('ERR_UPSTREAM_PROXY', `${proxyName} failed while connecting to ${where}: ${message}`, { cause: err });
  }
  return new ProxyError('ERR_DIAL_FAILED', `connecting to ${where} through ${proxyName} failed: ${message}`, { cause: err });
}

function abortError(signal: AbortSignal, where: string): ProxyError {
  const reason: unknown = signal.reason;
  // AbortSignal.timeout() is a deadline, so report it as one.
  if (reason instanceof Error && reason.name === 'TimeoutError') {
    return new ProxyError('ERR_DIAL_TIMEOUT', `dial to ${where} timed out`, { cause: reason });
  }
  return new ProxyError('ERR_DIAL_FAILED', `dial to ${where} aborted`, { cause: reason });
}

/**
 * A connected socket (setNoDelay(true), keepalive on, allowHalfOpen, handed over paused: attach listeners, then resume()) to the destination: direct with net.connect, or
 * through the proxy. A direct dial with `transientReads` has read nothing when handed over (paused
 * in its 'connect' event, before Node's first read). Rejects with ProxyError: ERR_ONION_NO_PROXY, ERR_DIAL_REFUSED, ERR_DIAL_UNREACHABLE,
 * ERR_DIAL_TIMEOUT, ERR_DIAL_FAILED, ERR_DIAL_NOT_ALLOWED (the proxy's policy), ERR_UPSTREAM_PROXY.
 * With a proxy, names are never resolved locally.
 */
export function dial(options: DialOptions): Promise<Socket> {
  const { destination, signal, timeoutMs } = options;
  const where = formatHostPort(destination);
  const proxy = destination.kind === 'onion' ? (options.onionProxy ?? options.upstreamProxy) : options.upstreamProxy;
  if (destination.kind === 'onion' && proxy === undefined) {
    return Promise.reject(
      new ProxyError('ERR_ONION_NO_PROXY', `${where} needs --onion-proxy or --upstream-proxy (Tor); it is never dialed or resolved directly`),
    );
  }
  if (signal?.aborted) return Promise.reject(abortError(signal, where));
  const proxyName = proxy ? `upstream proxy ${formatHostPort(proxy)}` : '';
  const started = Date.now();

  return new Promise<Socket>((resolve, reject) => {
    let settled = false;
    let phase: 'tcp' | 'socks' = 'tcp';

    // allowHalfOpen: a FIN from the remote ends only its direction; the engine passes it on.
    // A socket handed to `socks` must emit 'data': only a direct dial may read into the shared buffer.
    const socket = proxy
      ? netConnect({ host: proxy.host, port: proxy.port, allowHalfOpen: true })
      : options.transientReads === true
        ? connectTransient({ host: destination.host, port: destination.port, allowHalfOpen: true })
        : netConnect({ host: destination.host, port: destination.port, allowHalfOpen: true });

    const timer = setTimeout(() => {
      if (proxy && phase === 'tcp') {
        fail(new ProxyError('ERR_UPSTREAM_PROXY', `${proxyName} did not accept a TCP connection within ${timeoutMs} ms`));
      } else {
        fail(new ProxyError('ERR_DIAL_TIMEOUT', `no connection to ${where}${proxy ? ` through ${proxyName}` : ''} within ${timeoutMs} ms`));
      }
    }, timeoutMs);
    const onAbort = (): void => fail(abortError(signal!, where));
    signal?.addEventListener('abort', onAbort, { once: true });

    // Stays attached until we resolve: `socks` drops its own 'error' listener on failure, and an
    // 'error' with no listener would crash the process.
    const onError = (err: Error): void => {
      if (phase === 'socks') return; // `socks` reports it through its rejected promise
      fail(proxy ? new ProxyError('ERR_UPSTREAM_PROXY', `${proxyName} unreachable: ${err.message}`, { cause: err }) : directError(err, where));
    };
    socket.on('error', onError);
    // With allowHalfOpen a proxy's FIN does not close the socket, so `socks` would not notice it.
    const onEnd = (): void => fail(new ProxyError('ERR_UPSTREAM_PROXY', `${proxyName} closed the connection during the SOCKS5 handshake`));
    socket.on('end', onEnd);

    function cleanup(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.removeListener('error', onError);
      socket.removeListener('end', onEnd);
      socket.removeListener('connect', onConnect);
    }
    function fail(err: ProxyError): void {
      if (settled) return;
      settled = true;
      cleanup();
      // Swallow anything the dying socket still emits.
      socket.on('error', () => {});
      socket.destroy();
      reject(err);
    }
    function succeed(): void {
      if (settled) return;
      settled = true;
      cleanup();
      // Paused either way: the caller attaches its listeners, then resumes.
      socket.pause();
      resolve(socket);
    }

    function onConnect(): void {
      socket.setNoDelay(true);
      socket.setKeepAlive(true, KEEPALIVE_DELAY_MS);
      if (!proxy) {
        succeed();
        return;
      }
      phase = 'socks';
      const creds = chooseCredentials(proxy, options.credentials);
      SocksClient.createConnection({
        proxy: { host: proxy.host, port: proxy.port, type: 5, userId: creds.username, password: creds.password },
        command: 'connect',
        destination: { host: destination.host, port: destination.port },
        existing_socket: socket,
        // Its timer cannot be cleared; keep it no later than ours so it never outlives the dial by much.
        timeout: Math.max(1, timeoutMs - (Date.now() - started)),
      }).then(
        () => {
          // `socks` re-emits bytes that came with its CONNECT reply, and resumes the socket, on a
          // setImmediate of its own. Catch them here and hand the socket over paused, with them
          // unshifted, so that the caller, which may attach its reader much later, loses nothing.
          const excess: Buffer[] = [];
          const collect = (chunk: Buffer): void => {
            excess.push(chunk);
          };
          socket.on('data', collect);
          setImmediate(() => {
            socket.off('data', collect);
            if (excess.length > 0) socket.unshift(Buffer.concat(excess));
            succeed();
          });
        },
        (err: unknown) => fail(socksError(err, proxyName, where)),
      );
    }
    socket.once('connect', onConnect);
  });
}
