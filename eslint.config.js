// @ts-check
// ESLint (flat config): `npm run lint` checks, `npm run format` fixes what can be fixed mechanically.
// TypeScript files are linted with type information (typescript-eslint's project service reads
// tsconfig.json), so that rules such as no-floating-promises see which calls return a promise.
// Layout and whitespace are Prettier's job (.prettierrc.json); no rule here is about formatting.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'reports/', '.stryker-tmp/', 'bench/results/'] },
  js.configs.recommended,
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      // A promise nobody awaits loses its rejection; `void` marks the few places where that is intended.
      '@typescript-eslint/no-floating-promises': 'error',
      // `typeof import('...')` stays allowed: it types a dynamic import() right where the import is.
      '@typescript-eslint/consistent-type-imports': ['error', { prefer: 'type-imports', fixStyle: 'inline-type-imports', disallowTypeAnnotations: false }],
      // An async function without await is how a function that may throw keeps to a promise-returning
      // interface (a cleanup hook, a bench section): it rejects instead of throwing.
      '@typescript-eslint/require-await': 'off',
      // Passing on a caught error as it is (reject(err) in a catch) is as fine as rethrowing it.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],
    },
  },
  {
    // Plain JavaScript (build script, tool configs): no type information, Node's globals.
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: {
      sourceType: 'module',
      globals: { process: 'readonly', console: 'readonly', URL: 'readonly' },
    },
  },
);
