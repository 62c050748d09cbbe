// @ts-check
// Mutation testing with StrykerJS: `npm run mutate` (not part of CI; README "Mutation testing").
// Stryker copies the project to .stryker-tmp/, puts every mutant of src/ into the TypeScript sources
// behind a switch, compiles them with tsc (buildCommand) and runs the compiled mocha tests in dist/,
// for each mutant only the tests that cover it. Scoped to finish within an hour on the 2-core VM:
// STRYKER_SPEC (comma-separated globs of compiled tests, e.g. 'dist/test/v1/**/*.test.js') narrows the
// tests for a one-folder run (README "Mutation testing" lists the ones used per folder); unset, all run.
const narrowedSpec = process.env.STRYKER_SPEC ? process.env.STRYKER_SPEC.split(',') : undefined;
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  mutate: [
    'src/**/*.ts',
    // Runs only in the spawned executable (test/cli*.test.ts), which Stryker's in-process runner
    // cannot switch mutants in: every mutant there would be reported uncovered.
    '!src/cli.ts',
  ],
  mutator: {
    // Log and error message text: tests assert on error codes, never on wording (STYLE), so these
    // mutants are unkillable by design; they were a fifth of all mutants.
    excludedMutations: ['StringLiteral'],
  },
  // Module-level constants and tables can only be tested by reloading everything and running the
  // whole suite per mutant; the values that matter are pinned by literal tests (defaults, limits).
  ignoreStatic: true,
  testRunner: 'mocha',
  mochaOptions: {
    config: '.mocharc.json',
    // Fast unit tests first, so most mutants are killed before the slower socket tests run.
    spec: narrowedSpec ?? [
      'dist/test/crypto/**/*.test.js',
      'dist/test/v1/**/*.test.js',
      'dist/test/v2/**/*.test.js',
      'dist/test/socks5/**/*.test.js',
      'dist/test/upstream/**/*.test.js',
      'dist/test/config.test.js',
      'dist/test/defaults.test.js',
      'dist/test/log.test.js',
      'dist/test/metrics.test.js',
      'dist/test/status.test.js',
      'dist/test/engine/**/*.test.js',
      'dist/test/hardening/**/*.test.js',
      'dist/test/**/*.test.js',
    ],
    ignore: [
      // Stress tests: tens of seconds each, and the rules they check are covered by smaller tests.
      'dist/test/hardening/fuzz.test.js',
      'dist/test/hardening/load.test.js',
      'dist/test/hardening/backpressure.test.js',
      // They test the spawned executable, which runs unmutated code.
      'dist/test/cli.test.js',
      'dist/test/cli-signals.test.js',
      // Packs and installs a git clone of the project: in Stryker's sandbox (not a git checkout)
      // there is nothing to clone, and what it installs runs unmutated code anyway.
      'dist/test/install.test.js',
    ],
  },
  // .mocharc.json's node-option: Stryker runs mocha inside its own worker, which needs it as well.
  testRunnerNodeArgs: ['--expose-gc'],
  buildCommand: 'tsc -p tsconfig.json',
  coverageAnalysis: 'perTest',
  checkers: ['typescript'],
  tsconfigFile: 'tsconfig.json',
  concurrency: 2,
  // A mutant that hangs a session is cut 5 s past its tests' normal time (the tests' own timeouts are longer).
  timeoutMS: 5000,
  // The initial run is the whole suite with coverage: 3-5 min on the idle VM, more when it is shared;
  // Stryker's default of 5 min made an unscoped-test run fail before testing a single mutant.
  dryRunTimeoutMinutes: 30,
  ignorePatterns: ['dist', 'reports', 'bench/results'],
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/index.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  tempDirName: '.stryker-tmp',
};
