/**
 * BIP324 "v2 Bitcoin P2P message structure" for the independent test peer: the short message type
 * ids 1..28 from the BIP's table, and the 0x00 || 12-byte command long form. Nothing comes from src/.
 */

/** BIP324 short ids, written out as the BIP's table lists them. */
export const SHORT_IDS: Readonly<Record<number, string>> = {
  1: 'addr',
  2: 'block',
  3: 'blocktxn',
  4: 'cmpctblock',
  5: 'feefilter',
  6: 'filteradd',
  7: 'filterclear',
  8: 'filterload',
  9: 'getblocks',
  10: 'getblocktxn',
  11: 'getdata',
  12: 'getheaders',
  13: 'headers',
  14: 'inv',
  15: 'mempool',
  16: 'merkleblock',
  17: 'notfound',
  18: 'ping',
  19: 'pong',
  20: 'sendcmpct',
  21: 'tx',
  22: 'getcfilters',
  23: 'cfilter',
  24: 'getcfheaders',
  25: 'cfheaders',
  26: 'getcfcheckpt',
  27: 'cfcheckpt',
  28: 'addrv2',
};

const ID_OF: ReadonlyMap<string, number> = new Map(Object.entries(SHORT_IDS).map(([id, cmd]) => [cmd, Number(id)]));

/** The bytes before the payload: the short id when the BIP defines one, else 0x00 || command padded to 12. */
export function encodeType(command: string): Uint8Array {
  const id = ID_OF.get(command);
  if (id !== undefined) return Uint8Array.of(id);
  if (command.length > 12 || !/^[\x20-\x7e]*$/.test(command)) throw new Error(`independent-v2: cannot encode command ${JSON.stringify(command)}`);
  const out = new Uint8Array(13);
  for (let i = 0; i < command.length; i++) out[1 + i] = command.charCodeAt(i);
  return out;
}

/** Split contents into command and payload; throws on empty contents, an undefined id or a bad long form. */
export function decodeType(contents: Uint8Array): { command: string; payload: Uint8Array } {
  if (contents.length === 0) throw new Error('independent-v2: empty contents');
  const id = contents[0];
  if (id !== 0) {
    const command = SHORT_IDS[id];
    if (command === undefined) throw new Error(`independent-v2: undefined short id ${id}`);
    return { command, payload: contents.subarray(1) };
  }
  if (contents.length < 13) throw new Error('independent-v2: truncated long-form command');
  const field = contents.subarray(1, 13);
  const end = field.indexOf(0) < 0 ? 12 : field.indexOf(0);
  for (let i = 0; i < 12; i++) {
    const b = field[i];
    if (i < end ? b < 0x20 || b > 0x7e : b !== 0) throw new Error('independent-v2: malformed long-form command');
  }
  return { command: String.fromCharCode(...field.subarray(0, end)), payload: contents.subarray(13) };
}
