/**
 * BIP324 message type encoding inside v2 packet contents (BIP324 "v2 Bitcoin P2P message
 * structure"; Bitcoin Core V2Transport::GetMessageType, net.cpp).
 *
 * contents = short_id(1..255) || payload, or 0x00 || 12-byte NUL-padded command || payload.
 * Ids 1..28 are the BIP324 table. Core additionally maps 37 to `feature` (BIP434) on receipt; we
 * decode it but never send it, since peers that predate BIP434 would drop the message. Every
 * other id is undefined and the message is dropped without disconnecting, as Core does.
 */

import { ProxyError } from '../errors.js';
import { commandName, isValidCommand } from '../v1/framing.js';

const COMMAND_LEN = 12;
const LONG_PREFIX_LEN = 1 + COMMAND_LEN;

/** BIP324 short ids 1..28, in id order. */
const BIP324_SHORT_IDS = [
  'addr',
  'block',
  'blocktxn',
  'cmpctblock',
  'feefilter',
  'filteradd',
  'filterclear',
  'filterload',
  'getblocks',
  'getblocktxn',
  'getdata',
  'getheaders',
  'headers',
  'inv',
  'mempool',
  'merkleblock',
  'notfound',
  'ping',
  'pong',
  'sendcmpct',
  'tx',
  'getcfilters',
  'cfilter',
  'getcfheaders',
  'cfheaders',
  'getcfcheckpt',
  'cfcheckpt',
  'addrv2',
] as const;

/** Receive-side id -> command: BIP324 1..28 plus 37 -> 'feature' (Core, BIP434). */
export const SHORT_ID_COMMANDS: ReadonlyMap<number, string> = new Map<number, string>([
  ...BIP324_SHORT_IDS.map((command, i) => [i + 1, command] as [number, string]),
  [37, 'feature'],
]);

const SEND_IDS: ReadonlyMap<string, number> = new Map(BIP324_SHORT_IDS.map((command, i) => [command, i + 1]));

/** The short id to send for `command` (1..28 only), or undefined for the 13-byte long form. */
export function shortIdFor(command: string): number | undefined {
  return SEND_IDS.get(command);
}

// Every prefix is tiny, but command names come from the peer, so cap how many long forms are kept:
// a client cycling through made-up names must not grow this without bound.
const PREFIX_CACHE_MAX = 256;
const prefixCache = new Map<string, Buffer>(BIP324_SHORT_IDS.map((command, i) => [command, Buffer.from([i + 1])]));
const SHORT_PREFIXES = prefixCache.size;

/**
 * The bytes that precede the payload in v2 contents. The returned Buffer is shared between calls;
 * callers must not modify it. Throws ERR_V2_BAD_LONG_COMMAND for a name that cannot be encoded
 * (more than 12 characters or outside 0x20..0x7E).
 */
export function contentsPrefix(command: string): Buffer {
  const cached = prefixCache.get(command);
  if (cached !== undefined) return cached;

  let ok = command.length <= COMMAND_LEN;
  for (let i = 0; ok && i < command.length; i++) {
    const c = command.charCodeAt(i);
    ok = c >= 0x20 && c <= 0x7e;
  }
  if (!ok) {
    throw new ProxyError('ERR_V2_BAD_LONG_COMMAND', `cannot encode command ${JSON.stringify(command)} in the v2 long form`, {
      fatal: false,
    });
  }
  const prefix = Buffer.alloc(LONG_PREFIX_LEN);
  prefix.write(command, 1, 'latin1');
  if (prefixCache.size < SHORT_PREFIXES + PREFIX_CACHE_MAX) prefixCache.set(command, prefix);
  return prefix;
}

/**
 * Split received contents into command and payload (a subarray view of `contents`).
 * Throws a non-fatal ProxyError (drop the message, keep the connection) for empty contents, an
 * undefined short id, or a long form that is truncated or carries an invalid command field.
 *
 * The long-form field is checked with the v1 rule (0x20..0x7E): Core's v2 check also admits 0x7F,
 * but such a command could not be framed for a v1 client, which would drop it anyway.
 */
export function decodeContents(contents: Buffer): { command: string; payload: Buffer } {
  if (contents.length === 0) {
    throw new ProxyError('ERR_V2_EMPTY_CONTENTS', 'v2 packet with empty contents', { fatal: false });
  }
  const id = contents[0];
  if (id !== 0) {
    const command = SHORT_ID_COMMANDS.get(id);
    if (command === undefined) {
      throw new ProxyError('ERR_V2_UNKNOWN_SHORT_ID', `v2 message with undefined short id ${id}`, { fatal: false });
    }
    return { command, payload: contents.subarray(1) };
  }
  if (contents.length < LONG_PREFIX_LEN) {
    throw new ProxyError('ERR_V2_BAD_LONG_COMMAND', `v2 long-form message of ${contents.length} bytes, need at least ${LONG_PREFIX_LEN}`, {
      fatal: false,
    });
  }
  const field = contents.subarray(1, LONG_PREFIX_LEN);
  if (!isValidCommand(field)) {
    throw new ProxyError('ERR_V2_BAD_LONG_COMMAND', `v2 long-form command field ${field.toString('hex')}`, { fatal: false });
  }
  return { command: commandName(field), payload: contents.subarray(LONG_PREFIX_LEN) };
}
