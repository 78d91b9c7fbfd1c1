// ESLint with typescript-eslint's type-checked rules; formatting is Prettier's (`npm run format`).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// node:test's test()/describe() return promises the runner itself awaits.
const nodeTestCalls = [
  { from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite', 'before', 'after', 'beforeEach', 'afterEach'] },
];

export default tseslint.config(
  // .ci/node_modules.host: the machine's node_modules, kept aside while CI runs the suite on Node 24.
  { ignores: ['dist/', 'node_modules/', '.ci/node_modules.host/', 'docs/', 'test/fixtures/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { project: './tsconfig.json', tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': ['error', { allowForKnownSafeCalls: nodeTestCalls }],
      '@typescript-eslint/no-misused-promises': 'error',
      // As only-throw-error does for `throw`: passing on a caught error or an abort reason (typed any/unknown) is fine.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingAny: true, allowThrowingUnknown: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // Values crossing JSON, SQL rows and child-process boundaries are checked at run time (TypeBox schemas,
      // row mappers); the `any` these rules flag are those boundaries, not unchecked data.
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
  { files: ['**/*.js', '**/*.mjs'], ...tseslint.configs.disableTypeChecked },
);
