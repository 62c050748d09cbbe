/**
 * Which SOCKS reply a client gets, and its bytes (RFC 1928 §6; SOCKS4's rejection for a SOCKS4 client).
 *
 * Every SOCKS5 reply is the 10-byte `05 REP 00 01 0.0.0.0:0` form: NBitcoin accepts nothing else,
 * Bitcoin Core accepts it, and it is what Tor sends. The REP code for a failed dial follows Tor's
 * stream_end_reason_to_socks5_response (reference/socks5-and-clients.md); Core's behaviour does not
 * depend on the value, only its debug log does, so the point is an honest message.
 */
import { ProxyError } from '../errors.js';

const SOCKS5 = 0x05;
const ATYP_IPV4 = 0x01;

export const REP = {
  SUCCEEDED: 0x00,
  GENERAL_FAILURE: 0x01,
  NOT_ALLOWED: 0x02,
  NETWORK_UNREACHABLE: 0x03,
  HOST_UNREACHABLE: 0x04,
  CONNECTION_REFUSED: 0x05,
  TTL_EXPIRED: 0x06,
  COMMAND_NOT_SUPPORTED: 0x07,
  ATYP_NOT_SUPPORTED: 0x08,
} as const;

/** Always the 10-byte form 05 REP 00 01 00000000 0000 (NBitcoin requires exactly this; Core accepts it). */
export function socks5Reply(rep: number): Buffer {
  const reply = Buffer.alloc(10);
  reply[0] = SOCKS5;
  reply[1] = rep;
  reply[3] = ATYP_IPV4;
  return reply;
}

/** SOCKS4 rejection: 00 5B 00 00 00 00 00 00 (VN 0, CD 91 "request rejected or failed"). */
export const SOCKS4_REJECT: Buffer = Buffer.from([0x00, 0x5b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]);

/** True when `err` or one of its causes carries one of these errno codes. */
function hasErrno(err: unknown, codes: readonly string[]): boolean {
  for (let e = err, depth = 0; e !== null && typeof e === 'object' && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && codes.includes(code)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/**
 * Which REP code reports an error from dialing (modelled on Tor's
 * stream_end_reason_to_socks5_response). Core's behaviour does not depend on the value (only its debug
 * log does), so the point is an honest message.
 */
export function repForError(err: unknown): number {
  if (!(err instanceof ProxyError)) return REP.GENERAL_FAILURE;
  switch (err.code) {
    case 'ERR_DIAL_REFUSED':
      return REP.CONNECTION_REFUSED;
    case 'ERR_DIAL_UNREACHABLE':
      return hasErrno(err.cause, ['ENETUNREACH', 'ENETDOWN']) ? REP.NETWORK_UNREACHABLE : REP.HOST_UNREACHABLE;
    case 'ERR_DIAL_TIMEOUT':
      return REP.TTL_EXPIRED;
    case 'ERR_ONION_NO_PROXY':
    case 'ERR_DIAL_NOT_ALLOWED':
      return REP.NOT_ALLOWED;
    case 'ERR_SOCKS_BAD_COMMAND':
      return REP.COMMAND_NOT_SUPPORTED;
    case 'ERR_SOCKS_BAD_ATYP':
      return REP.ATYP_NOT_SUPPORTED;
    default:
      return REP.GENERAL_FAILURE;
  }
}
