/**
 * The pieces of the shaping benchmark (bench/shaping.ts) that need no sockets: the scripted message
 * mix a v1 client sends, the observer's view of a trace (bursts: size and time), and the observer's
 * classifier (a small decision tree) with its evaluation. Kept apart so that candidate ladders and
 * cover settings can be compared offline on the same scripts before the live run.
 */

// --- seeded randomness ----------------------------------------------------------------------------

/** A small seeded PRNG (splitmix32): the same seed gives the same script in every mode. */
export function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return ((z ^ (z >>> 16)) >>> 0) / 2 ** 32;
  };
}

function exponential(rand: () => number, mean: number): number {
  return -Math.log(1 - rand()) * mean;
}

function poisson(rand: () => number, mean: number): number {
  let k = 0;
  let p = Math.exp(-mean);
  let cdf = p;
  const u = rand();
  while (u > cdf && k < 1000) {
    k++;
    p *= mean / k;
    cdf += p;
  }
  return k;
}

// --- the mix ----------------------------------------------------------------------------------------

export interface ScriptMessage {
  command: string;
  payloadLength: number;
}

export interface ScriptEvent {
  /** Milliseconds from the start of the trace. */
  at: number;
  /** Written by the client in one write(). */
  messages: ScriptMessage[];
  /** The event is the tx message of a transaction broadcast. */
  tx: boolean;
}

/**
 * Transaction sizes (serialized bytes, witness included) of common spends, with how often each
 * appears in the mix: 1-input 2-output P2WPKH (222 B) is the usual wallet payment. A few bytes of
 * jitter stand for signature lengths (ECDSA signatures are 71-73 bytes).
 */
const TX_SIZES: readonly [number, number][] = [
  [191, 0.1], // 1-in 1-out P2WPKH
  [205, 0.15], // 1-in 2-out P2TR key path
  [222, 0.35], // 1-in 2-out P2WPKH
  [226, 0.05], // 1-in 2-out P2PKH
  [372, 0.2], // 2-in 2-out P2WPKH
  [520, 0.08], // 3-in 2-out P2WPKH
  [816, 0.05], // 5-in 2-out P2WPKH
  [1500, 0.02], // 10-in 1-out consolidation
];

function txSize(rand: () => number): number {
  let u = rand();
  for (const [size, p] of TX_SIZES) {
    if (u < p) return size + Math.floor(rand() * 5) - 2;
    u -= p;
  }
  return TX_SIZES[2][0];
}

/** What the mix is, for the report. */
export const MIX_DESCRIPTION = [
  'inv of 1 + Poisson(3) transaction ids, every 2 s on average (Bitcoin Core trickles invs to an outbound peer every 2 s)',
  'getdata of 1-3 transaction ids, 0.3 per second',
  'ping every 20 s (Core: every 2 min; compressed)',
  'a new block every 30 s (compressed from 10 min): getdata for it, and every other block a headers announcement of it',
  'getheaders with a 20-30 hash locator every 60 s (compressed)',
  "transaction broadcasts, 4 per 40 s: an inv of 1 id, then, one simulated round trip later (40-160 ms, the peer's getdata), the tx; sizes of common spends (190 B to 1.5 kB, most 205-372 B)",
  "the client relays no other transactions (as a wallet's own node or a light client would): every tx message it sends is one of its own broadcasts, the case where a broadcast stands out most",
];

/** The scripted mix of one trace: `seconds` long, seeded; sorted by time. */
export function mixScript(seed: number, seconds: number, broadcasts = Math.round((4 * seconds) / 40)): ScriptEvent[] {
  const rand = seeded(seed);
  const end = seconds * 1000;
  const events: ScriptEvent[] = [];
  const poissonTimes = (meanGapMs: number, f: (at: number) => void): void => {
    for (let t = exponential(rand, meanGapMs); t < end; t += exponential(rand, meanGapMs)) f(t);
  };
  const items = (k: number): number => 1 + 36 * k;
  poissonTimes(2000, (at) => events.push({ at, messages: [{ command: 'inv', payloadLength: items(1 + poisson(rand, 3)) }], tx: false }));
  poissonTimes(1000 / 0.3, (at) => events.push({ at, messages: [{ command: 'getdata', payloadLength: items(1 + Math.floor(rand() * 3)) }], tx: false }));
  for (let t = rand() * 20_000; t < end; t += 20_000) events.push({ at: t, messages: [{ command: 'ping', payloadLength: 8 }], tx: false });
  let block = 0;
  for (let t = rand() * 30_000; t < end; t += 30_000) {
    events.push({ at: t, messages: [{ command: 'getdata', payloadLength: items(1) }], tx: false });
    if (block++ % 2 === 1) events.push({ at: t + 5 + rand() * 50, messages: [{ command: 'headers', payloadLength: 1 + 81 }], tx: false });
  }
  for (let t = rand() * 60_000; t < end; t += 60_000) {
    events.push({ at: t, messages: [{ command: 'getheaders', payloadLength: 4 + 1 + 32 * (20 + Math.floor(rand() * 11)) + 32 }], tx: false });
  }
  for (let i = 0; i < broadcasts; i++) {
    // Spread over the trace, away from its ends, so every broadcast is fully inside it.
    const at = ((i + 0.1 + 0.8 * rand()) * (end - 1000)) / broadcasts;
    events.push({ at, messages: [{ command: 'inv', payloadLength: items(1) }], tx: false });
    events.push({ at: at + 40 + rand() * 120, messages: [{ command: 'tx', payloadLength: txSize(rand) }], tx: true });
  }
  return events.sort((a, b) => a.at - b.at);
}

/** Wire bytes of one v2 packet for a message with a short id (every command in the mix has one). */
export function v2WireSize(m: ScriptMessage): number {
  return 3 + 1 + 1 + m.payloadLength + 16;
}

// --- the observer's view -----------------------------------------------------------------------------

/** One burst as the observer sees it: segments close together in time, merged. */
export interface Burst {
  /** Milliseconds. */
  at: number;
  bytes: number;
  /** Ground truth, never shown to the classifier: the burst carries a transaction broadcast. */
  tx: boolean;
}

export interface Trace {
  bursts: Burst[];
  /** Length in milliseconds. */
  length: number;
}

/** Segments closer than this (ms) are one burst to the observer; on loopback one write arrives within microseconds. */
export const BURST_GAP_MS = 1;

/** Merge timed reads into bursts (reads within BURST_GAP_MS of the previous one join it). */
export function toBursts(reads: { at: number; bytes: number; tx: boolean }[]): Burst[] {
  const out: Burst[] = [];
  for (const r of [...reads].sort((a, b) => a.at - b.at)) {
    const last = out[out.length - 1];
    if (last !== undefined && r.at - last.at <= BURST_GAP_MS) {
      last.bytes += r.bytes;
      last.tx ||= r.tx;
    } else out.push({ ...r });
  }
  return out;
}

// --- the classifier ----------------------------------------------------------------------------------

/** A decision tree (CART, Gini impurity) with class weights, so that rare positives count as much as negatives. */
interface Node {
  feature?: number;
  threshold?: number;
  left?: Node;
  right?: Node;
  /** Weighted share of positives at this node. */
  p: number;
}

export interface Sample {
  x: number[];
  y: boolean;
}

const MAX_DEPTH = 6;
const MIN_LEAF_SHARE = 0.01;
const THRESHOLDS = 48;

export function trainTree(samples: Sample[]): Node {
  const pos = samples.filter((s) => s.y).length;
  const neg = samples.length - pos;
  // Balanced weights: both classes weigh the same in all.
  const w = samples.map((s) => (s.y ? 0.5 / Math.max(1, pos) : 0.5 / Math.max(1, neg)));
  const idx = samples.map((_, i) => i);
  return grow(samples, w, idx, 0);
}

function grow(samples: Sample[], w: number[], idx: number[], depth: number): Node {
  let wp = 0;
  let wt = 0;
  for (const i of idx) {
    wt += w[i];
    if (samples[i].y) wp += w[i];
  }
  const node: Node = { p: wt === 0 ? 0.5 : wp / wt };
  if (depth >= MAX_DEPTH || wp === 0 || wp === wt) return node;
  const gini = (a: number, t: number): number => (t === 0 ? 0 : 2 * (a / t) * (1 - a / t) * t);
  let best = { gain: 1e-9, feature: -1, threshold: 0 };
  const base = gini(wp, wt);
  const nf = samples[idx[0]].x.length;
  for (let f = 0; f < nf; f++) {
    const values = [...new Set(idx.map((i) => samples[i].x[f]))].sort((a, b) => a - b);
    if (values.length < 2) continue;
    const cands: number[] = [];
    const stride = Math.max(1, Math.floor(values.length / THRESHOLDS));
    for (let k = stride; k < values.length; k += stride) cands.push((values[k - 1] + values[k]) / 2);
    for (const th of cands) {
      let lp = 0;
      let lt = 0;
      for (const i of idx) {
        if (samples[i].x[f] <= th) {
          lt += w[i];
          if (samples[i].y) lp += w[i];
        }
      }
      const rt = wt - lt;
      if (lt < MIN_LEAF_SHARE || rt < MIN_LEAF_SHARE) continue;
      const gain = base - gini(lp, lt) - gini(wp - lp, rt);
      if (gain > best.gain) best = { gain, feature: f, threshold: th };
    }
  }
  if (best.feature < 0) return node;
  const left = idx.filter((i) => samples[i].x[best.feature] <= best.threshold);
  const right = idx.filter((i) => samples[i].x[best.feature] > best.threshold);
  return { ...node, feature: best.feature, threshold: best.threshold, left: grow(samples, w, left, depth + 1), right: grow(samples, w, right, depth + 1) };
}

export function predict(tree: Node, x: number[]): number {
  let n = tree;
  while (n.feature !== undefined) n = x[n.feature] <= n.threshold! ? n.left! : n.right!;
  return n.p;
}

/** Balanced accuracy: the mean of the true positive and true negative rates; 50 % is chance whatever the class sizes. */
export function balancedAccuracy(pred: boolean[], truth: boolean[]): number {
  let tp = 0;
  let p = 0;
  let tn = 0;
  let n = 0;
  pred.forEach((v, i) => {
    if (truth[i]) {
      p++;
      if (v) tp++;
    } else {
      n++;
      if (!v) tn++;
    }
  });
  return 0.5 * (p === 0 ? 1 : tp / p) + 0.5 * (n === 0 ? 1 : tn / n);
}

// --- features ------------------------------------------------------------------------------------------

/** What the observer computes for one burst: its size, its neighbours' sizes and the gaps to them. */
export function burstFeatures(bursts: Burst[], i: number): number[] {
  const b = bursts[i];
  const prev = bursts[i - 1];
  const next = bursts[i + 1];
  const gap = (x: Burst | undefined, y: Burst | undefined): number => (x === undefined || y === undefined ? 60_000 : Math.abs(y.at - x.at));
  return [
    b.bytes,
    // An inv or getdata is 22 + 36k wire bytes: the observer knows the protocol.
    (b.bytes - 22) % 36 === 0 ? 1 : 0,
    gap(prev, b),
    gap(b, next),
    prev?.bytes ?? 0,
    next?.bytes ?? 0,
  ];
}

/** Window length (ms) of the "when" question: did a broadcast go out in this second? */
export const WINDOW_MS = 1000;

/**
 * What the observer computes for one window: how many bursts, how many bytes, the largest bursts,
 * the shortest gap, and the highest per-burst score of a burst classifier trained beforehand.
 */
export function windowFeatures(bursts: Burst[], start: number, score: (i: number) => number): number[] {
  const inside: number[] = [];
  for (let i = 0; i < bursts.length; i++) if (bursts[i].at >= start && bursts[i].at < start + WINDOW_MS) inside.push(i);
  const sizes = inside.map((i) => bursts[i].bytes).sort((a, b) => b - a);
  let minGap = WINDOW_MS;
  for (let k = 1; k < inside.length; k++) minGap = Math.min(minGap, bursts[inside[k]].at - bursts[inside[k - 1]].at);
  return [inside.length, sizes.reduce((a, b) => a + b, 0), sizes[0] ?? 0, sizes[1] ?? 0, sizes[2] ?? 0, minGap, Math.max(0, ...inside.map(score))];
}

export interface Evaluation {
  /** Balanced accuracy of "is this burst a transaction broadcast?" from its size alone, in %. */
  size: number;
  /** The same question with the timing and sizes of the neighbouring bursts too, in %. */
  burst: number;
  /** Balanced accuracy of "did a broadcast go out in this 1 s window?", in %. */
  window: number;
}

/**
 * Two-fold cross-validation over traces: train on half of them, test on the other half, and the
 * other way round; the tree never sees its test traces. Returns balanced accuracies in %.
 */
export function evaluate(traces: Trace[]): Evaluation {
  const half = Math.ceil(traces.length / 2);
  const folds: [Trace[], Trace[]][] = [
    [traces.slice(0, half), traces.slice(half)],
    [traces.slice(half), traces.slice(0, half)],
  ];
  const burstPred: boolean[] = [];
  const burstTruth: boolean[] = [];
  const sizePred: boolean[] = [];
  const winPred: boolean[] = [];
  const winTruth: boolean[] = [];
  for (const [train, test] of folds) {
    if (test.length === 0) continue;
    const burstSamples = (ts: Trace[]): Sample[] => ts.flatMap((t) => t.bursts.map((b, i) => ({ x: burstFeatures(t.bursts, i), y: b.tx })));
    // The burst tree is trained on one half of the training traces and scores the windows of the
    // other half, so that the window tree learns from honest (out-of-sample) scores.
    const inner = Math.ceil(train.length / 2);
    const burstTree = trainTree(burstSamples(train));
    const sizeOnly = (ss: Sample[]): Sample[] => ss.map((x) => ({ x: [x.x[0]], y: x.y }));
    const sizeTree = trainTree(sizeOnly(burstSamples(train)));
    const innerTree = trainTree(burstSamples(train.slice(0, inner)));
    const windowSamples = (ts: Trace[], tree: Node): Sample[] =>
      ts.flatMap((t) => {
        const scores = t.bursts.map((_, i) => predict(tree, burstFeatures(t.bursts, i)));
        const out: Sample[] = [];
        for (let s = 0; s + WINDOW_MS <= t.length; s += WINDOW_MS) {
          const y = t.bursts.some((b) => b.tx && b.at >= s && b.at < s + WINDOW_MS);
          out.push({ x: windowFeatures(t.bursts, s, (i) => scores[i]), y });
        }
        return out;
      });
    const windowTree = trainTree(windowSamples(train.slice(inner), innerTree));
    for (const s of burstSamples(test)) {
      burstPred.push(predict(burstTree, s.x) > 0.5);
      sizePred.push(predict(sizeTree, [s.x[0]]) > 0.5);
      burstTruth.push(s.y);
    }
    for (const s of windowSamples(test, burstTree)) {
      winPred.push(predict(windowTree, s.x) > 0.5);
      winTruth.push(s.y);
    }
  }
  return {
    size: 100 * balancedAccuracy(sizePred, burstTruth),
    burst: 100 * balancedAccuracy(burstPred, burstTruth),
    window: 100 * balancedAccuracy(winPred, winTruth),
  };
}

// --- statistics ------------------------------------------------------------------------------------------

export function quantile(values: number[], q: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

export function median(values: number[]): number {
  return quantile(values, 0.5);
}
