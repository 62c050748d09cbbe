/**
 * SOCKS5 server negotiation as a sans-I/O push parser: RFC 1928 §3 (method selection), RFC 1929 §2
 * (username/password), RFC 1928 §4-§6 (CONNECT request and reply).
 *
 * The caller feeds bytes as they arrive and writes out what comes back; sockets live elsewhere.
 * Choices, each from how the clients (Bitcoin Core's Socks5() in netbase.cpp, NBitcoin) and Tor behave:
 * - Method 0x02 wins when offered, as Tor does, so the client's credentials (Core's per-connection
 *   stream-isolation tokens) reach us and can be passed on to an upstream Tor. Any username and
 *   password are accepted, empty ones included (Tor accepts those since 0.3.5). A method the client
 *   did not offer is never chosen.
 * - Only CONNECT. BIND, UDP ASSOCIATE and Tor's RESOLVE/RESOLVE_PTR get REP 07.
 * - Every reply is the 10-byte `05 REP 00 01 0.0.0.0:0` form: NBitcoin accepts nothing else, Core
 *   accepts it, and it is what Tor sends.
 * - A destination we refuse (bad name, port 0) gets REP 01 "general failure", as Tor does for a
 *   malformed hostname (tor test_socks.c, socks_5_malformed_commands): 02 "not allowed" would tell the
 *   client a ruleset refused a valid address, which is not what happened.
 * - Unsupported commands are answered only once the whole request has arrived when its length is
 *   known, so we do not close on unread bytes (a TCP reset can destroy the reply before the client
 *   reads it). With an unknown ATYP the length is unknowable and we answer at once.
 * Each message is parsed as soon as it is complete, so at most one partial message (< 513 bytes) is
 * ever held between pushes; pipelined greeting+auth+request in one chunk is parsed in one push.
 */

import { ProxyError } from '../errors.js';
import { formatIPv6, makeDestination, type Destination } from '../address.js';
import { REP, SOCKS4_REJECT, socks5Reply } from './reply.js';

/** Largest message of each phase: VER NMETHODS + 255 methods; VER ULEN 255 PLEN 255; 4 + LEN + 255 + port. */
export const MAX_GREETING_LEN = 2 + 255;
export const MAX_AUTH_LEN = 3 + 255 + 255;
export const MAX_REQUEST_LEN = 5 + 255 + 2;

const SOCKS5 = 0x05;
const SOCKS4 = 0x04;
const RFC1929_VERSION = 0x01;
const METHOD_NO_AUTH = 0x00;
const METHOD_USER_PASS = 0x02;
const METHOD_NONE_ACCEPTABLE = 0xff;
const CMD_CONNECT = 0x01;
const ATYP_IPV4 = 0x01;
const ATYP_DOMAINNAME = 0x03;
const ATYP_IPV6 = 0x04;

const COMMAND_NAMES: Record<number, string> = { 0x02: 'BIND', 0x03: 'UDP ASSOCIATE', 0xf0: 'Tor RESOLVE', 0xf1: 'Tor RESOLVE_PTR' };

export type Socks5Step =
  /** Write to the client and keep feeding. */
  | { type: 'reply'; data: Buffer }
  /** Negotiation complete: the caller dials, then writes socks5Reply(...). `rest` = bytes after the request (normally empty). */
  | { type: 'request'; destination: Destination; username?: string; password?: string; rest: Buffer }
  /** Write data (if any), then close. */
  | { type: 'fail'; data?: Buffer; error: ProxyError };

const GREETING = 0;
const AUTH = 1;
const REQUEST = 2;
const DONE = 3;
type Phase = typeof GREETING | typeof AUTH | typeof REQUEST | typeof DONE;

const EMPTY = Buffer.alloc(0);
const REPLY_NO_AUTH = Buffer.from([SOCKS5, METHOD_NO_AUTH]);
const REPLY_USER_PASS = Buffer.from([SOCKS5, METHOD_USER_PASS]);
const REPLY_NO_METHOD = Buffer.from([SOCKS5, METHOD_NONE_ACCEPTABLE]);
const AUTH_OK = Buffer.from([RFC1929_VERSION, 0x00]);
const AUTH_FAILED = Buffer.from([RFC1929_VERSION, 0x01]);

/** Negotiation state of one client connection. */
export class Socks5Negotiation {
  #phase: Phase = GREETING;
  /** At most one incomplete message, copied out of the caller's chunk. */
  #pending: Buffer = EMPTY;
  #username: string | undefined;
  #password: string | undefined;

  /** Bytes held back waiting for the rest of a message (for tests and metrics). */
  get bufferedBytes(): number {
    return this.#pending.length;
  }

  /**
   * Feed bytes as they arrive (the first byte 0x05 included). Returns the steps in order; after
   * 'request' or 'fail' it must not be fed again.
   */
  push(chunk: Buffer): Socks5Step[] {
    if (this.#phase === DONE) throw new Error('Socks5Negotiation.push() after the negotiation finished');
    const buf = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    const steps: Socks5Step[] = [];
    let off = 0;
    while (off < buf.length) {
      let used: number;
      if (this.#phase === GREETING) used = this.#greeting(buf, off, steps);
      else if (this.#phase === AUTH) used = this.#auth(buf, off, steps);
      else used = this.#request(buf, off, steps);
      if (this.#finished()) {
        this.#pending = EMPTY;
        return steps;
      }
      if (used === 0) break;
      off += used;
    }
    // Copy the partial message so we do not pin a large chunk from the socket.
    this.#pending = off === buf.length ? EMPTY : Buffer.from(buf.subarray(off));
    return steps;
  }

  /** A method call, so TypeScript does not narrow #phase across the parser calls that change it. */
  #finished(): boolean {
    return this.#phase === DONE;
  }

  #fail(steps: Socks5Step[], error: ProxyError, data?: Buffer): number {
    this.#phase = DONE;
    steps.push(data === undefined ? { type: 'fail', error } : { type: 'fail', data, error });
    return 0;
  }

  /** RFC 1928 §3: VER NMETHODS METHODS. Returns bytes consumed, 0 when more are needed or on failure. */
  #greeting(buf: Buffer, off: number, steps: Socks5Step[]): number {
    const ver = buf[off];
    if (ver !== SOCKS5) {
      if (ver === SOCKS4) return this.#fail(steps, new ProxyError('ERR_SOCKS4', 'SOCKS4 request; only SOCKS5 is served'), SOCKS4_REJECT);
      return this.#fail(steps, new ProxyError('ERR_SOCKS_BAD_VERSION', `SOCKS version byte 0x${hex2(ver)}, expected 0x05`));
    }
    if (buf.length - off < 2) return 0;
    const nMethods = buf[off + 1];
    if (nMethods === 0) {
      return this.#fail(steps, new ProxyError('ERR_SOCKS_NO_METHOD', 'SOCKS5 greeting offers no methods'), REPLY_NO_METHOD);
    }
    const len = 2 + nMethods;
    if (buf.length - off < len) return 0;
    const methods = buf.subarray(off + 2, off + len);
    if (methods.includes(METHOD_USER_PASS)) {
      steps.push({ type: 'reply', data: REPLY_USER_PASS });
      this.#phase = AUTH;
    } else if (methods.includes(METHOD_NO_AUTH)) {
      steps.push({ type: 'reply', data: REPLY_NO_AUTH });
      this.#phase = REQUEST;
    } else {
      const offered = Array.from(methods, hex2).join(' ');
      return this.#fail(steps, new ProxyError('ERR_SOCKS_NO_METHOD', `SOCKS5 greeting offers methods [${offered}], neither 00 nor 02`), REPLY_NO_METHOD);
    }
    return len;
  }

  /** RFC 1929 §2: VER(01) ULEN UNAME PLEN PASSWD; empty ULEN/PLEN accepted like Tor. */
  #auth(buf: Buffer, off: number, steps: Socks5Step[]): number {
    const ver = buf[off];
    if (ver !== RFC1929_VERSION) {
      return this.#fail(steps, new ProxyError('ERR_SOCKS_BAD_AUTH', `username/password version 0x${hex2(ver)}, expected 0x01`), AUTH_FAILED);
    }
    const avail = buf.length - off;
    if (avail < 2) return 0;
    const uLen = buf[off + 1];
    if (avail < 3 + uLen) return 0;
    const pLen = buf[off + 2 + uLen];
    const len = 3 + uLen + pLen;
    if (avail < len) return 0;
    // latin1 maps each byte to one code point, so distinct credentials stay distinct (they are isolation tokens).
    this.#username = buf.toString('latin1', off + 2, off + 2 + uLen);
    this.#password = buf.toString('latin1', off + 3 + uLen, off + len);
    steps.push({ type: 'reply', data: AUTH_OK });
    this.#phase = REQUEST;
    return len;
  }

  /** RFC 1928 §4: VER CMD RSV ATYP DST.ADDR DST.PORT. */
  #request(buf: Buffer, off: number, steps: Socks5Step[]): number {
    const ver = buf[off];
    if (ver !== SOCKS5) {
      return this.#fail(steps, new ProxyError('ERR_SOCKS_BAD_VERSION', `SOCKS5 request with version byte 0x${hex2(ver)}`), socks5Reply(REP.GENERAL_FAILURE));
    }
    const avail = buf.length - off;
    if (avail < 4) return 0;
    const cmd = buf[off + 1];
    const rsv = buf[off + 2];
    const atyp = buf[off + 3];
    if (rsv !== 0) {
      return this.#fail(
        steps,
        new ProxyError('ERR_SOCKS_BAD_VERSION', `SOCKS5 request with reserved byte 0x${hex2(rsv)} (must be 00)`),
        socks5Reply(REP.GENERAL_FAILURE),
      );
    }
    let addrStart: number;
    let addrLen: number;
    if (atyp === ATYP_IPV4) {
      addrStart = off + 4;
      addrLen = 4;
    } else if (atyp === ATYP_IPV6) {
      addrStart = off + 4;
      addrLen = 16;
    } else if (atyp === ATYP_DOMAINNAME) {
      if (avail < 5) return 0;
      addrStart = off + 5;
      addrLen = buf[off + 4]!;
    } else if (cmd !== CMD_CONNECT) {
      return this.#fail(steps, badCommand(cmd), socks5Reply(REP.COMMAND_NOT_SUPPORTED));
    } else {
      return this.#fail(
        steps,
        new ProxyError('ERR_SOCKS_BAD_ATYP', `SOCKS5 address type 0x${hex2(atyp)} (only 01, 03, 04)`),
        socks5Reply(REP.ATYP_NOT_SUPPORTED),
      );
    }
    const end = addrStart + addrLen + 2;
    if (buf.length < end) return 0;
    if (cmd !== CMD_CONNECT) return this.#fail(steps, badCommand(cmd), socks5Reply(REP.COMMAND_NOT_SUPPORTED));

    const addr = buf.subarray(addrStart, addrStart + addrLen);
    const host = atyp === ATYP_IPV4 ? `${addr[0]}.${addr[1]}.${addr[2]}.${addr[3]}` : atyp === ATYP_IPV6 ? formatIPv6(addr) : addr.toString('latin1');
    const port = buf.readUInt16BE(addrStart + addrLen);
    let destination: Destination;
    try {
      destination = makeDestination(host, port);
    } catch (err) {
      const error = err instanceof ProxyError ? err : new ProxyError('ERR_SOCKS_BAD_ADDRESS', String(err), { cause: err });
      return this.#fail(steps, error, socks5Reply(REP.GENERAL_FAILURE));
    }
    const step: Socks5Step = { type: 'request', destination, rest: buf.subarray(end) };
    if (this.#username !== undefined) step.username = this.#username;
    if (this.#password !== undefined) step.password = this.#password;
    steps.push(step);
    this.#phase = DONE;
    return end - off;
  }
}

function badCommand(cmd: number): ProxyError {
  const name = COMMAND_NAMES[cmd] ?? `0x${hex2(cmd)}`;
  return new ProxyError('ERR_SOCKS_BAD_COMMAND', `SOCKS5 command ${name} is not supported (only CONNECT)`);
}

function hex2(byte: number): string {
  return byte.toString(16).padStart(2, '0');
}
