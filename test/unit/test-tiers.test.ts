/**
 * The tiers agree with the tests: the scale list names real files, unit files never need the
 * control plane, and the runner's per-file cap of each tier is above the timeouts its files declare
 * (all of them added up, which over-counts a describe and its tests: the safe side).
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import ts from 'typescript';
import { repoRoot } from '../../devcluster/cluster.js';
import { FILE_TIMEOUT_MS, SCALE_FILES, needsControlPlane, tierOf } from '../support/tiers.js';

function testSources(dir: string): string[] {
  return readdirSync(dir).flatMap((e) => {
    const p = join(dir, e);
    return statSync(p).isDirectory() ? testSources(p) : e.endsWith('.test.ts') ? [relative(repoRoot, p)] : [];
  });
}

/** A constant number expression (`600_000`, `15 * 60_000`), or undefined when it is not one. */
function constant(e: ts.Expression): number | undefined {
  if (ts.isNumericLiteral(e)) return Number(e.text);
  if (ts.isParenthesizedExpression(e)) return constant(e.expression);
  if (ts.isBinaryExpression(e) && e.operatorToken.kind === ts.SyntaxKind.AsteriskToken) {
    const l = constant(e.left);
    const r = constant(e.right);
    return l !== undefined && r !== undefined ? l * r : undefined;
  }
  return undefined;
}

/** Every `timeout: <constant>` in the file, added up. */
function declaredTimeouts(file: string): number {
  const sf = ts.createSourceFile(file, readFileSync(join(repoRoot, file), 'utf8'), ts.ScriptTarget.ES2022, true);
  let sum = 0;
  const visit = (n: ts.Node): void => {
    if (ts.isPropertyAssignment(n) && n.name.getText(sf) === 'timeout') sum += constant(n.initializer) ?? 0;
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return sum;
}

const sources = testSources(join(repoRoot, 'test'));

describe('test tiers', () => {
  it('lists only scale files that exist', () => {
    for (const f of SCALE_FILES) assert.ok(existsSync(join(repoRoot, `${f}.ts`)), `${f}.ts exists`);
    assert.equal(sources.filter((f) => tierOf(f) === 'scale').length, SCALE_FILES.length);
  });

  it('keeps every unit test away from the control plane', () => {
    const clusterModule = join(repoRoot, 'dist', 'test', 'support', 'cluster.js');
    const unit = sources.filter((f) => tierOf(f) === 'unit');
    assert.ok(unit.length > 10, 'the unit tier has its files');
    const needing = unit.filter((f) =>
      needsControlPlane(join(repoRoot, 'dist', f.replace(/\.ts$/, '.js')), clusterModule),
    );
    assert.deepEqual(needing, [], 'unit test files that reach test/support/cluster');
    const e2e = join(repoRoot, 'dist', 'test', 'e2e', 'pods-lifecycle.test.js');
    assert.equal(needsControlPlane(e2e, clusterModule), true, 'an e2e file that uses the cluster is seen to need it');
  });

  it('caps each file above the timeouts it declares', () => {
    const over = sources
      .map((f) => ({ f, declared: declaredTimeouts(f), cap: FILE_TIMEOUT_MS[tierOf(f)] }))
      .filter((x) => x.declared >= x.cap)
      .map((x) => `${x.f}: declares ${x.declared} ms, its tier caps a file at ${x.cap} ms`);
    assert.deepEqual(over, []);
    assert.ok(declaredTimeouts('test/e2e/aci-scale.test.ts') >= 15 * 60_000, 'the scan reads the declared timeouts');
  });
});
