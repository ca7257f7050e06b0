/**
 * The product apart from its tools: the production build (tsconfig.build.json, what the Dockerfile
 * compiles) holds the connector only, and package.json's production dependencies are exactly what
 * that code loads. The program is built with the TypeScript API, which follows every import, so a
 * product file that reaches into the emulator, the dev cluster or the tests shows up here even though
 * tsconfig.build.json does not include them.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join, relative, sep } from 'node:path';
import { before, describe, it } from 'node:test';
import ts from 'typescript';
import { repoRoot } from '../../devcluster/cluster.js';

interface PackageJson {
  bin: Record<string, string>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
}

const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as PackageJson;
let files: string[] = [];

before(() => {
  const configPath = join(repoRoot, 'tsconfig.build.json');
  const parsed = ts.getParsedCommandLineOfConfigFile(
    configPath,
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => assert.fail(ts.flattenDiagnosticMessageText(d.messageText, '\n')),
    },
  );
  assert.ok(parsed, 'tsconfig.build.json parses');
  const program = ts.createProgram({ rootNames: parsed.fileNames, options: parsed.options });
  files = program
    .getSourceFiles()
    .map((f) => relative(repoRoot, f.fileName).split(sep).join('/'))
    .filter((f) => !f.startsWith('node_modules/') && !f.startsWith('../'))
    .sort();
});

/** The package a bare specifier names: `@scope/name` or `name`, without a subpath. */
function packageOf(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? specifier);
}

const isBuiltin = (s: string) => s.startsWith('node:') || builtinModules.includes(s);

/** The file as compiled: type-only imports are gone, so what is left is what runs. */
function compiled(file: string): string {
  const source = readFileSync(join(repoRoot, file), 'utf8');
  return ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.NodeNext, target: ts.ScriptTarget.ES2022 },
    fileName: file,
  }).outputText;
}

/** Specifiers the compiled file loads at run time. */
const runtimeImports = (file: string): string[] =>
  ts.preProcessFile(compiled(file), true, true).importedFiles.map((f) => f.fileName);

describe('the production build', () => {
  it('compiles the connector and nothing of the emulator, the dev cluster, the bench or the tests', () => {
    assert.ok(files.includes('src/cli/main.ts'), 'the connector entry point is in the build');
    assert.ok(files.includes('src/providers/aci/index.ts'), 'the ACI provider is in the build');
    const outside = files.filter(
      (f) => !f.startsWith('src/') || f.startsWith('src/emulator/') || /\.test\.ts$/.test(f),
    );
    assert.deepEqual(outside, [], 'files in the production build that are development tools');
  });

  it('ships a bin for every entry point, and every bin is compiled', () => {
    for (const [name, target] of Object.entries(pkg.bin)) {
      const src = target.replace(/^dist\//, '').replace(/\.js$/, '.ts');
      assert.ok(files.includes(src), `bin ${name} (${target}) is built from ${src}`);
    }
  });

  it('imports at run time only Node built-ins and production dependencies', () => {
    const wrong: string[] = [];
    for (const f of files.filter((x) => x.endsWith('.ts') && !x.endsWith('.d.ts'))) {
      for (const s of runtimeImports(f)) {
        if (s.startsWith('.') || isBuiltin(s)) continue;
        if (!(packageOf(s) in pkg.dependencies)) wrong.push(`${f} imports ${s}`);
      }
    }
    assert.deepEqual(wrong, [], 'production code loading a package that is not a production dependency');
  });

  it('uses every production dependency', () => {
    const used = new Set<string>();
    for (const f of files.filter((x) => x.endsWith('.ts') && !x.endsWith('.d.ts'))) {
      for (const s of runtimeImports(f)) if (!s.startsWith('.') && !isBuiltin(s)) used.add(packageOf(s));
      // Some packages are loaded by name rather than imported, e.g. pino's `transport: { target: 'pino-pretty' }`.
      const js = compiled(f);
      for (const d of Object.keys(pkg.dependencies)) if (js.includes(`'${d}'`)) used.add(d);
    }
    const unused = Object.keys(pkg.dependencies).filter((d) => !used.has(d));
    assert.deepEqual(unused, [], 'production dependencies the connector never loads (move them to devDependencies)');
    const both = Object.keys(pkg.dependencies).filter((d) => d in pkg.devDependencies);
    assert.deepEqual(both, [], 'packages listed as both production and development dependencies');
  });
});
