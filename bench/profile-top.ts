/**
 * The top frames of a V8 CPU profile (what `node --cpu-prof` writes), by self time and by file.
 * Used to see what dominates in the proxy child when a target is missed:
 *
 *   BENCH_CHILD_FLAGS="--cpu-prof --cpu-prof-dir=bench/results/prof" node dist/bench/proxy.js
 *   node dist/bench/profile-top.js bench/results/prof/<file>.cpuprofile [top-n]
 *   node dist/bench/profile-top.js <file>.cpuprofile --callers _copyActual [depth]
 *
 * Self time of a node = its hit count x the mean sample interval; the profile covers the child's
 * whole life, so run only the benchmark of interest to keep other phases out of it.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
}

function shortUrl(url: string): string {
  const i = url.indexOf('/dist/');
  if (i >= 0) return url.slice(i + 1);
  const nm = url.indexOf('/node_modules/');
  if (nm >= 0) return url.slice(nm + 1);
  return url === '' ? '(native)' : url;
}

export function topFrames(profile: Profile, n: number): string[] {
  const totalHits = profile.nodes.reduce((a, node) => a + (node.hitCount ?? 0), 0);
  const msPerHit = (profile.endTime - profile.startTime) / 1000 / Math.max(1, totalHits);
  const byFrame = new Map<string, number>();
  const byFile = new Map<string, number>();
  for (const node of profile.nodes) {
    const hits = node.hitCount ?? 0;
    if (hits === 0) continue;
    const f = node.callFrame;
    const name = `${f.functionName || '(anonymous)'} ${shortUrl(f.url)}${f.url ? `:${f.lineNumber + 1}` : ''}`;
    byFrame.set(name, (byFrame.get(name) ?? 0) + hits);
    const file = f.url === '' ? f.functionName : shortUrl(f.url);
    byFile.set(file, (byFile.get(file) ?? 0) + hits);
  }
  const idle = byFrame.get('(idle) (native)') ?? 0;
  const busy = totalHits - idle;
  const lines: string[] = [];
  lines.push(`${(totalHits * msPerHit).toFixed(0)} ms profiled, ${(busy * msPerHit).toFixed(0)} ms busy (${((100 * busy) / totalHits).toFixed(1)} %)`);
  const show = (title: string, m: Map<string, number>): void => {
    lines.push('', `${title} (self time, % of busy)`);
    for (const [k, hits] of [...m]
      .filter(([k]) => !k.startsWith('(idle)'))
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)) {
      lines.push(`${(hits * msPerHit).toFixed(0).padStart(7)} ms ${((100 * hits) / busy).toFixed(1).padStart(5)} %  ${k}`);
    }
  };
  show('top functions', byFrame);
  show('top files', byFile);
  return lines;
}

/** Where the self time of functions named `name` comes from: the call paths `depth` frames up, by hits. */
export function callers(profile: Profile, name: string, depth: number, n: number): string[] {
  const parent = new Map<number, ProfileNode>();
  for (const node of profile.nodes) for (const c of node.children ?? []) parent.set(c, node);
  const byPath = new Map<string, number>();
  let total = 0;
  for (const node of profile.nodes) {
    if (node.callFrame.functionName !== name || !node.hitCount) continue;
    total += node.hitCount;
    const path: string[] = [];
    for (let p = parent.get(node.id); p !== undefined && path.length < depth; p = parent.get(p.id)) {
      path.push(`${p.callFrame.functionName || '(anonymous)'}@${shortUrl(p.callFrame.url).replace(/^.*\//, '')}:${p.callFrame.lineNumber + 1}`);
    }
    const key = path.join(' < ');
    byPath.set(key, (byPath.get(key) ?? 0) + node.hitCount);
  }
  const lines = [`callers of ${name} (${total} samples)`];
  for (const [k, hits] of [...byPath].sort((a, b) => b[1] - a[1]).slice(0, n)) {
    lines.push(`${((100 * hits) / Math.max(1, total)).toFixed(1).padStart(5)} %  ${k}`);
  }
  return lines;
}

if (process.argv[1]?.endsWith('profile-top.js')) {
  const [file, second, third] = process.argv.slice(2);
  if (file === undefined) throw new Error('usage: profile-top.js FILE.cpuprofile [top-n] | FILE --callers NAME [depth]');
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  if (second === '--callers' && third !== undefined) console.log(callers(profile, third, Number(process.argv[5] ?? 3), 15).join('\n'));
  else console.log(topFrames(profile, Number(second ?? 25)).join('\n'));
}
