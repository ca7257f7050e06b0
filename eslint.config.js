// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// The rooms of the README's "Where things live" table, enforced. Each entry is a regex over the
// import specifier; relative specifiers are matched by the folder they climb into.
const up = String.raw`^(\.\./)+`;
const noTools = {
  regex: `${up}(devcluster|test|bench)/`,
  message: 'The product (src/) never imports the dev cluster, the tests or the bench: they are development tools.',
};
const noEmulator = {
  regex: `${up}emulator/`,
  message: 'The emulator is a development tool, not part of the connector: the product never imports it.',
};
const coreRules = [
  {
    regex: `${up}providers/`,
    message: 'The core never knows a provider: it reaches providers only through src/core/provider.ts.',
  },
];
const providerRules = [
  {
    // core/provider.ts is the contract; everything else in the core is the core's own business.
    regex: `${up}core/(?!provider\\.js$)`,
    message: 'A provider sees the core only through src/core/provider.ts.',
  },
  {
    regex: `${up}(cli|kubelet-api)/`,
    message: 'A provider depends on the core contract and src/common only.',
  },
];
const kubeClient = {
  name: '@kubernetes/client-node',
  // The V1Pod data model is the contract's vocabulary (src/core/provider.ts hands providers a V1Pod);
  // the API client is not: a provider never talks to the Kubernetes API.
  allowTypeImports: true,
  message: 'A provider never touches the Kubernetes API; it gets what it needs through src/core/provider.ts.',
};
const commonRules = [
  {
    regex: `${up}(core|providers|cli|kubelet-api)/`,
    message: 'src/common is the shared kit: it depends on no room.',
  },
];

/** @param {object[]} patterns @param {object[]} [paths] */
const restrict = (patterns, paths = []) => ({
  'no-restricted-imports': 'off',
  '@typescript-eslint/no-restricted-imports': ['error', { paths, patterns }],
});

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'charts/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
  },
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // node:test's describe/it/test return promises that the runner itself awaits.
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite'] },
          ],
        },
      ],
      // An async function without await is deliberate here: a provider or handler that throws
      // must reject, not throw synchronously, so `async` stays even when nothing is awaited.
      '@typescript-eslint/require-await': 'off',
      // A `default:` branch is an explicit decision about the other values.
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
      'no-console': 'off',
    },
  },
  // Later blocks replace earlier options for the same rule, so each room lists every pattern it obeys.
  { files: ['src/**/*.ts'], rules: restrict([noTools, noEmulator]) },
  { files: ['src/emulator/**/*.ts'], rules: restrict([noTools]) },
  { files: ['src/core/**/*.ts'], rules: restrict([noTools, noEmulator, ...coreRules]) },
  { files: ['src/providers/**/*.ts'], rules: restrict([noTools, noEmulator, ...providerRules], [kubeClient]) },
  { files: ['src/common/**/*.ts'], rules: restrict([noTools, noEmulator, ...commonRules]) },
  { files: ['**/*.js', '**/*.mjs'], ...tseslint.configs.disableTypeChecked },
);
