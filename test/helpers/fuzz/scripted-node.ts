/**
 * A loopback v2 node for fault tests: a BIP324 responder (falling back to v1 like Core) that answers
 * version/ping/echo, records what it sent, and lets a test tap its writes or add its own commands.
 */
import * as net from 'node:net';
import { randomBytes } from 'node:crypto';
import { MessageChannel, type Msg, listenOnLoopback, versionPayload } from '../node.js';
import { MAIN } from './inputs.js';
import { type WritePlan, type WriteTap, tapWrites } from './write-tap.js';

const EMPTY = Buffer.alloc(0);

export interface ScriptedConn {
  readonly index: number;
  readonly socket: net.Socket;
  readonly channel: MessageChannel;
  /** Every message this node sent on the connection, in order. */
  readonly sent: Msg[];
  readonly tap: WriteTap | undefined;
}

export interface ScriptedNodeOptions {
  magic?: Buffer;
  /**
   * true (default): when the proxy half-closes, answer what was received, then end; reading goes on.
   * false: end at once, like a default net.Server.
   */
  halfOpen?: boolean;
  /** Garbage length of the responder (default random 0..4095, as BIP324). */
  garbageLen?: number;
  /** A write plan per accepted connection (index from 0). */
  plan?: (index: number) => WritePlan | undefined;
  /** Called for every received message after the built-in answers (version, ping, echo). */
  onMessage?: (conn: ScriptedConn, msg: Msg) => void;
  /** Keep every sent message in conn.sent (default true; off for bulk senders). */
  recordSent?: boolean;
}

export interface ScriptedNode {
  port: number;
  conns: ScriptedConn[];
  stop: () => Promise<void>;
}

/** A v2 responder on 127.0.0.1 (falls back to v1 like Core), answering version/ping/echo, with hooks for faults. */
export async function startScriptedNode(options: ScriptedNodeOptions = {}): Promise<ScriptedNode> {
  const magic = options.magic ?? MAIN.magic;
  const halfOpen = options.halfOpen ?? true;
  const node: ScriptedNode = { port: 0, conns: [], stop: async () => {} };
  const server = net.createServer({ allowHalfOpen: halfOpen }, (socket) => {
    const index = node.conns.length;
    socket.on('error', () => {});
    const plan = options.plan?.(index);
    const tap = plan === undefined ? undefined : tapWrites(socket, plan);
    const channel = new MessageChannel(socket, magic, {
      v2: 'responder',
      transportOptions: options.garbageLen === undefined ? {} : { garbage: randomBytes(options.garbageLen) },
    });
    const sent: Msg[] = [];
    const send = channel.send.bind(channel);
    const record = options.recordSent ?? true;
    channel.send = (command: string, payload: Buffer = EMPTY): void => {
      if (record) sent.push({ command, payload });
      send(command, payload);
    };
    const conn: ScriptedConn = { index, socket, channel, sent, tap };
    node.conns.push(conn);
    const tick = (): void => {
      for (const m of channel.received.splice(0)) {
        if (m.command === 'version') {
          channel.send('version', versionPayload());
          channel.send('verack');
        } else if (m.command === 'ping') channel.send('pong', m.payload);
        else if (m.command === 'echo') channel.send('echo', m.payload);
        options.onMessage?.(conn, m);
      }
    };
    socket.on('data', () => setImmediate(tick));
    if (halfOpen) {
      // Answer what came with or before the FIN first (tick is queued by the last 'data'), then end.
      socket.on('end', () => setImmediate(() => setImmediate(() => !socket.destroyed && socket.end())));
    }
  });
  Object.assign(node, await listenOnLoopback(server));
  return node;
}
