/**
 * Reading a TestProxy's log: which connection a client port was accepted as, how each connection
 * ended (its error code, or clean), and whether every line follows the log rules.
 */
import { ERROR_CODES } from '../../../src/errors.js';
import { sleep } from './sockets.js';

/** Incremental index of a TestProxy's log lines by connection: who was accepted on which client port, how each ended. */
export class LogIndex {
  private scanned = 0;
  private readonly acceptedByPort = new Map<number, { id: number; at: number }>();
  private readonly endLines = new Map<number, string>();
  private readonly byConn = new Map<number, string[]>();
  /** Connections that logged more than one end line. */
  readonly duplicateEnds: string[] = [];

  constructor(readonly logs: string[]) {}

  update(): void {
    for (; this.scanned < this.logs.length; this.scanned++) {
      const line = this.logs[this.scanned];
      const m = /\bconn=(\d+) (\S+)/.exec(line);
      if (m === null) continue;
      const id = Number(m[1]);
      let list = this.byConn.get(id);
      if (list === undefined) this.byConn.set(id, (list = []));
      list.push(line);
      if (m[2] === 'accepted') {
        const p = /\bclient=\S*:(\d+)\b/.exec(line);
        if (p !== null) this.acceptedByPort.set(Number(p[1]), { id, at: this.scanned });
      } else if (m[2] === 'refused' || m[2] === 'closed') {
        if (this.endLines.has(id)) this.duplicateEnds.push(line);
        else this.endLines.set(id, line);
      }
    }
  }

  /** The connection accepted from this client port at or after log position `since`. */
  connOf(clientPort: number, since: number): number | undefined {
    this.update();
    const a = this.acceptedByPort.get(clientPort);
    return a !== undefined && a.at >= since ? a.id : undefined;
  }

  endOf(id: number): string | undefined {
    this.update();
    return this.endLines.get(id);
  }

  linesOf(id: number): string[] {
    this.update();
    return this.byConn.get(id) ?? [];
  }

  /** Drop every line (long fuzz runs); positions restart at 0. */
  clear(): void {
    this.logs.length = 0;
    this.scanned = 0;
    this.acceptedByPort.clear();
    this.endLines.clear();
    this.byConn.clear();
    this.duplicateEnds.length = 0;
  }
}

export function codeOf(line: string): string | undefined {
  return /\bcode=(ERR_[A-Z0-9_]+)/.exec(line)?.[1];
}

/**
 * What is wrong in these log lines: a refusal or error close without `code=ERR_...` and `reason=`,
 * a code that is not in ERROR_CODES, an ERROR line, an "internal error" (a non-ProxyError escaped).
 */
export function logProblems(lines: readonly string[]): string[] {
  const problems: string[] = [];
  for (const line of lines) {
    if (/ ERROR /.test(line)) problems.push(`ERROR line: ${line}`);
    if (/internal error/.test(line)) problems.push(`internal error: ${line}`);
    const refusal = / WARN {2}.*\b(refused|closed|dropped)\b/.test(line);
    if (refusal && (!/\bcode=ERR_[A-Z0-9_]+/.test(line) || !/\breason=/.test(line))) problems.push(`refusal without code and reason: ${line}`);
    const code = codeOf(line);
    if (code !== undefined && !(code in ERROR_CODES)) problems.push(`unknown code ${code}: ${line}`);
  }
  return problems;
}

/** Outcome of a connection: the code of its end line, 'clean' (no code), or why there is none. */
export async function outcomeOf(index: LogIndex, clientPort: number, since: number, waitMs = 3000): Promise<{ id?: number; outcome: string; line?: string }> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const id = index.connOf(clientPort, since);
    const line = id === undefined ? undefined : index.endOf(id);
    if (line !== undefined) return { id, line, outcome: codeOf(line) ?? 'clean' };
    if (Date.now() > deadline) return { id, outcome: id === undefined ? 'not-accepted' : 'no-end-line' };
    await sleep(20);
  }
}
