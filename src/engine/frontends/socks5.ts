/**
 * The SOCKS5 front end (RFC 1928/1929): negotiate, dial the destination, answer only once the
 * remote TCP connection is up (Bitcoin Core's -proxy waits 20 s for that answer), then let the
 * client's first bytes decide: a v1 VERSION (any magic) is translated to v2; anything else is a
 * client that speaks v2 itself and is passed through untouched.
 *
 * The client's credentials go to the upstream proxy unchanged (Tor stream isolation), or fresh
 * random ones when it sent none; a fallback redial uses the same route and credentials.
 */
import type { Socket } from 'node:net';
import { ProxyError } from '../../errors.js';
import { formatHostPort } from '../../address.js';
import { Socks5Negotiation, type Socks5Step } from '../../socks5/negotiation.js';
import { REP, repForError, socks5Reply } from '../../socks5/reply.js';
import { randomCredentials } from '../../upstream/dialer.js';
import { classifyClientStream } from '../detect.js';
import type { Negotiation, Services } from '../negotiation.js';
import { endpoints } from '../record.js';

export async function serveSocks5(n: Negotiation, head: Buffer, services: Services): Promise<void> {
  const negotiation = new Socks5Negotiation();
  let chunk: Buffer = head;
  for (;;) {
    for (const step of negotiation.push(chunk)) {
      if (step.type === 'reply') n.socket.write(step.data);
      else if (step.type === 'fail') throw step.error.withReply(step.data);
      else return connect(n, step, services);
    }
    chunk = await n.reader.next();
  }
}

async function connect(n: Negotiation, step: Extract<Socks5Step, { type: 'request' }>, services: Services): Promise<void> {
  // The dial has its own deadline (--connect-timeout); the negotiation one is over.
  n.clearDeadline();
  n.reader.unshift(step.rest);
  const destination = step.destination;
  n.conn.record.peer = formatHostPort(destination);
  const given = step.username !== undefined && (step.username !== '' || (step.password ?? '') !== '');
  const credentials = given ? { username: step.username!, password: step.password ?? '' } : randomCredentials();
  let remote: Socket;
  try {
    remote = await services.dialFor(n, destination, credentials);
  } catch (err) {
    const e = err instanceof ProxyError ? err : new ProxyError('ERR_INTERNAL', `dial: ${String(err)}`, { cause: err });
    throw e.withReply(socks5Reply(repForError(e)));
  }
  n.socket.write(socks5Reply(REP.SUCCEEDED));

  // A v1 client sends its VERSION, a v2 client its key, right after the reply: wait that long at most.
  const socksMs = services.config.timeouts.socksMs;
  n.deadline(socksMs, () => new ProxyError('ERR_CLIENT_TIMEOUT', `the client sent nothing within ${socksMs} ms of the SOCKS5 reply`));
  const { bytes: first, result: stream } = await n.readUntil(Buffer.alloc(0), (b) => {
    const s = classifyClientStream(b, services.config.network);
    return s.kind === 'more' ? undefined : s;
  });
  n.clearDeadline();
  n.reader.unshift(first);
  const localInitial = n.reader.release();
  if (stream.kind === 'v2') {
    services.startBridge(n.conn, { role: 'passthrough', local: n.socket, localInitial, remote });
    return;
  }
  if (stream.kind !== 'v1') throw new ProxyError('ERR_INTERNAL', 'client stream undecided');
  if (stream.unknownMagic === true) {
    const magic = stream.network.magic.toString('hex');
    // Relaying it as "a client that speaks v2" would send the client's plaintext as is: encrypt it
    // instead, with the client's own magic in the key derivation, as its custom network's nodes do.
    n.conn.log.warn('client sent a v1 VERSION with an unknown network magic; treating it as a custom network (set --magic if this is your custom signet)', {
      ...endpoints(n.conn.record),
      magic,
      hint: `--magic ${magic}`,
    });
  }
  services.startBridge(n.conn, {
    role: 'initiator',
    local: n.socket,
    localInitial,
    remote,
    network: stream.network,
    destination,
    redial: (signal) => services.dial(destination, { credentials, signal, viaProxy: true }),
  });
}
