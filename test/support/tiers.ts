/**
 * The test tiers, and what a test file needs to run.
 * - unit: logic only, seconds, no control plane, no emulator process, no podman (test/unit/).
 * - e2e: the real control plane and/or the emulator, podman (test/e2e/, test/emulator/).
 * - scale: the 500-plus-pod tests, minutes each (listed below).
 * CI (`./scripts/test` with no tier) runs all three, in that order.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

export const TIERS = ['unit', 'e2e', 'scale'] as const;
export type Tier = (typeof TIERS)[number];

export const isTier = (s: string): s is Tier => (TIERS as readonly string[]).includes(s);

/** The 500-plus-pod tests (paths from the repository root, without extension). */
export const SCALE_FILES: readonly string[] = [
  'test/e2e/aci-scale.test', // 500 pods through the control plane and the emulator
  'test/e2e/aci-ha-churn.test', // 300 pods of churn through two replicas, the leader killed three times
  'test/e2e/aci-targets.test', // 2 × 400 pods, one target against two
  'test/emulator/aci-provider-throttling.test', // 500 pods against ARM's throttling
  'test/emulator/aci-provider-budget.test', // 5,000 groups within ARM's read budget
  'test/emulator/scale.test', // 2,000 groups through the emulator
  'test/e2e/aci-real-limits.test', // 250 pods under ACI's real creation windows (about 11 minutes)
  'test/e2e/aci-head-of-line.test', // 500 pods, 495 of them waiting on the creation window
];

/**
 * The runner's cap per test file, by tier: larger than the sum of the timeouts any file of the tier
 * declares (test/unit/test-tiers.test.ts checks it), so a test's own timeout always fires first and
 * the cap only catches a file that hangs outside any test.
 */
export const FILE_TIMEOUT_MS: Record<Tier, number> = {
  unit: 60_000,
  e2e: 30 * 60_000,
  scale: 60 * 60_000,
};

/** A test file's tier from its path relative to the repository root (or to dist/), .ts or .js. */
export function tierOf(relPath: string): Tier {
  const p = relPath
    .replace(/\\/g, '/')
    .replace(/^dist\//, '')
    .replace(/\.(ts|js)$/, '');
  if (SCALE_FILES.includes(p)) return 'scale';
  if (p.startsWith('test/unit/')) return 'unit';
  return 'e2e';
}

/** Local modules a compiled ES module imports (static and dynamic imports with a literal specifier). */
function localImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)['"](\.{1,2}\/[^'"]+)['"]/gm)) {
    if (m[1]) out.push(resolve(dirname(file), m[1]));
  }
  return out;
}

/**
 * Whether a compiled test file needs the shared control plane: it does when it reaches, through its
 * local imports, the module that reads the cluster's description (test/support/cluster.js).
 */
export function needsControlPlane(file: string, clusterModule: string, seen = new Set<string>()): boolean {
  if (file === clusterModule) return true;
  if (seen.has(file)) return false;
  seen.add(file);
  let imports: string[];
  try {
    imports = localImports(file);
  } catch {
    return false; // not a file we compiled (e.g. a JSON import)
  }
  return imports.some((i) => needsControlPlane(i, clusterModule, seen));
}
