/**
 * Bitcoin networks: magic bytes (wire order) and default P2P ports.
 * Source: Bitcoin Core src/kernel/chainparams.cpp (pchMessageStart and nDefaultPort of each network).
 * A custom signet has its own magic: the first 4 bytes of sha256d(compact-size length || challenge).
 */

export interface Network {
  readonly name: string;
  /** 4 bytes, wire order. */
  readonly magic: Buffer;
  readonly port: number;
}

export const NETWORKS: readonly Network[] = [
  { name: 'main', magic: Buffer.from('f9beb4d9', 'hex'), port: 8333 },
  { name: 'testnet3', magic: Buffer.from('0b110907', 'hex'), port: 18333 },
  { name: 'testnet4', magic: Buffer.from('1c163f28', 'hex'), port: 48333 },
  { name: 'signet', magic: Buffer.from('0a03cf40', 'hex'), port: 38333 },
  { name: 'regtest', magic: Buffer.from('fabfb5da', 'hex'), port: 18444 },
];

/** Accepted spellings for --network. */
const ALIASES: Record<string, string> = { mainnet: 'main', bitcoin: 'main', testnet: 'testnet3', test: 'testnet3' };

export function networkByName(name: string): Network | undefined {
  const n = ALIASES[name.toLowerCase()] ?? name.toLowerCase();
  return NETWORKS.find((net) => net.name === n);
}

export function networkByMagic(magic: Uint8Array): Network | undefined {
  return NETWORKS.find((net) => net.magic.equals(magic));
}

/** A network for a custom magic given as 8 hex digits (a custom signet). */
export function customNetwork(magicHex: string): Network {
  const known = networkByMagic(Buffer.from(magicHex, 'hex'));
  return known ?? { name: `custom-${magicHex.toLowerCase()}`, magic: Buffer.from(magicHex, 'hex'), port: 38333 };
}

/** The 16-byte start of a v1 VERSION message: magic || "version" || 5 NULs. */
export function v1VersionPrefix(magic: Uint8Array): Buffer {
  const prefix = Buffer.alloc(16);
  prefix.set(magic, 0);
  prefix.write('version', 4, 'ascii');
  return prefix;
}

/** Bytes 4..15 of a v1 VERSION prefix, the part that does not depend on the network. */
export const VERSION_COMMAND_FIELD: Buffer = v1VersionPrefix(Buffer.alloc(4)).subarray(4);
