/**
 * The lint rules that carry the project's boundaries really fire: ESLint's Node API runs the
 * repository's own eslint.config.js over small fixture files laid out like the tree (src/core,
 * src/providers/aci, src/cli). Only the TypeScript project is swapped for a tiny one over the
 * fixtures, so the type-aware rules run in a second instead of type-checking the whole tree.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ESLint } from 'eslint';
import { repoRoot } from '../../devcluster/cluster.js';

const fixtures: Record<string, string> = {
  'src/core/floating.ts': `
    async function tick(): Promise<void> {}
    export function run(): void {
      tick();
    }
  `,
  'src/core/voided.ts': `
    async function tick(): Promise<void> {}
    export function run(): void {
      void tick();
    }
  `,
  'src/core/imports-provider-internals.ts': `
    import { AciProvider } from '../providers/aci/provider.js';
    export const p: unknown = AciProvider;
  `,
  'src/core/imports-emulator.ts': `
    import { startEmulator } from '../emulator/server.js';
    export const e: unknown = startEmulator;
  `,
  'src/providers/aci/imports-kube-client.ts': `
    import { KubeConfig } from '@kubernetes/client-node';
    export const k: unknown = KubeConfig;
  `,
  'src/providers/aci/imports-core-internals.ts': `
    import { PodController } from '../../core/pod-controller.js';
    export const c: unknown = PodController;
  `,
  'src/providers/aci/allowed.ts': `
    import type { V1Pod } from '@kubernetes/client-node';
    import type { Provider } from '../../core/provider.js';
    import { logger } from '../../common/logger.js';
    export type Both = [V1Pod, Provider];
    export const l: unknown = logger;
  `,
  'src/cli/imports-test-support.ts': `
    import { waitFor } from '../../test/support/wait.js';
    export const w: unknown = waitFor;
  `,
  'src/cli/non-exhaustive.ts': `
    export function phase(p: 'Pending' | 'Running' | 'Failed'): number {
      switch (p) {
        case 'Pending':
          return 0;
        case 'Running':
          return 1;
      }
      return 2;
    }
  `,
};

let root = '';
let results = new Map<string, ESLint.LintResult>();

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'aci-lint-fixtures-'));
  for (const [file, text] of Object.entries(fixtures)) {
    mkdirSync(dirname(join(root, file)), { recursive: true });
    writeFileSync(join(root, file), text);
  }
  writeFileSync(
    join(root, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        target: 'ES2022',
        types: [],
        noEmit: true,
      },
      include: ['src/**/*.ts'],
    }),
  );
  // With overrideConfigFile, the config's file patterns are relative to cwd: the fixture root.
  const eslint = new ESLint({
    cwd: root,
    overrideConfigFile: join(repoRoot, 'eslint.config.js'),
    overrideConfig: {
      languageOptions: {
        parserOptions: { projectService: false, project: join(root, 'tsconfig.json'), tsconfigRootDir: root },
      },
    },
  });
  const out = await eslint.lintFiles(Object.keys(fixtures));
  results = new Map(out.map((r) => [r.filePath.slice(root.length + 1), r]));
});

after(() => rmSync(root, { recursive: true, force: true }));

function rulesFired(file: string): string[] {
  const r = results.get(file);
  assert.ok(r, `${file} was linted`);
  const fatal = r.messages.filter((m) => m.fatal);
  assert.deepEqual(fatal, [], `${file} parsed`);
  return r.messages.map((m) => m.ruleId ?? '');
}

describe('lint', () => {
  it('fails on a floating promise and passes when it is voided', () => {
    assert.ok(rulesFired('src/core/floating.ts').includes('@typescript-eslint/no-floating-promises'));
    assert.deepEqual(rulesFired('src/core/voided.ts'), []);
  });

  it('fails when the core imports a provider or the emulator', () => {
    assert.deepEqual(rulesFired('src/core/imports-provider-internals.ts'), [
      '@typescript-eslint/no-restricted-imports',
    ]);
    assert.deepEqual(rulesFired('src/core/imports-emulator.ts'), ['@typescript-eslint/no-restricted-imports']);
  });

  it('fails when a provider imports the Kubernetes client or the core past provider.ts', () => {
    assert.deepEqual(rulesFired('src/providers/aci/imports-kube-client.ts'), [
      '@typescript-eslint/no-restricted-imports',
    ]);
    assert.deepEqual(rulesFired('src/providers/aci/imports-core-internals.ts'), [
      '@typescript-eslint/no-restricted-imports',
    ]);
  });

  it('lets a provider use the contract, src/common and the Kubernetes types', () => {
    assert.deepEqual(rulesFired('src/providers/aci/allowed.ts'), []);
  });

  it('fails when the product imports the tests, and on a non-exhaustive switch', () => {
    assert.deepEqual(rulesFired('src/cli/imports-test-support.ts'), ['@typescript-eslint/no-restricted-imports']);
    assert.deepEqual(rulesFired('src/cli/non-exhaustive.ts'), ['@typescript-eslint/switch-exhaustiveness-check']);
  });
});
