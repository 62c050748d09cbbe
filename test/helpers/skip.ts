/**
 * Skipping a test visibly: the reason is appended to the title of each test skipped before mocha's
 * skip(), so the spec reporter prints it on the test's "pending" line, and mocha's summary (and
 * .ci/run's closing line) counts it. A test must never return early and pass when it could not
 * check anything.
 */
export function skipBecause(ctx: Mocha.Context, reason: string): never {
  const runnable = ctx.test as Mocha.Test | Mocha.Hook | undefined;
  const mark = (t: Mocha.Runnable): void => {
    if (!t.title.includes('[skipped: ')) t.title += ` [skipped: ${reason}]`;
  };
  if (runnable?.type === 'test') mark(runnable);
  else if (runnable !== undefined && /each/.test(runnable.originalTitle ?? runnable.title) && ctx.currentTest !== undefined) mark(ctx.currentTest);
  else for (const t of runnable?.parent?.tests ?? []) mark(t); // a "before all" hook skips the whole suite
  ctx.skip();
}
