/**
 * The deploy manifests agree with the code: the Helm chart's ClusterRole is the
 * same as examples/rbac.yaml (which the e2e tests run under), and every flag the
 * manifests pass exists in the real CLI parser.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseAllDocuments, parse } from 'yaml';
import { repoRoot } from '../../devcluster/cluster.js';
import { buildProgram } from '../../src/cli/options.js';

const read = (p: string) => readFileSync(join(repoRoot, p), 'utf8');

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

function exampleRules(): Rule[] {
  const docs = parseAllDocuments(read('examples/rbac.yaml')).map((d) => d.toJS() as { kind: string; rules?: Rule[] });
  const role = docs.find((d) => d.kind === 'ClusterRole');
  assert.ok(role?.rules, 'examples/rbac.yaml has a ClusterRole with rules');
  return role.rules;
}

test('the Helm chart grants exactly the ClusterRole in examples/rbac.yaml', () => {
  // Only metadata.name is templated in the chart's ClusterRole, so its rules block is plain YAML.
  const text = read('charts/aci-connector/templates/clusterrole.yaml');
  const rulesBlock = text.slice(text.indexOf('\nrules:') + 1);
  const chartRules = (parse(rulesBlock) as { rules: Rule[] }).rules;
  assert.deepEqual(chartRules, exampleRules());
});

function flagsAccepted(args: string[]): void {
  const program = buildProgram('0.0.0-test').exitOverride();
  program.configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  program.action(() => undefined);
  program.parse(['node', 'aci-connector', ...args]);
}

test("the example Deployment's arguments parse with the connector's own CLI", () => {
  const docs = parseAllDocuments(read('examples/aci-connector.yaml')).map(
    (d) => d.toJS() as { kind: string; spec: { template: { spec: { containers: { args: string[] }[] } } } },
  );
  const dep = docs.find((d) => d.kind === 'Deployment');
  const args = dep?.spec.template.spec.containers[0]?.args;
  assert.ok(args && args.length > 0);
  assert.doesNotThrow(() => flagsAccepted(args));
  assert.throws(
    () => flagsAccepted([...args, '--no-such-flag']),
    'a wrong flag is refused, so the check above means something',
  );
});

test("the chart's Deployment passes only flags the CLI knows", () => {
  const text = read('charts/aci-connector/templates/deployment.yaml');
  const flags = [...text.matchAll(/^\s+- (--[a-z-]+)=/gm)].map((m) => m[1] ?? '');
  assert.ok(flags.length >= 8, `found the chart's flags (${flags.join(' ')})`);
  const sample: Record<string, string> = {
    '--provider': 'aci',
    '--taint': 'azure.com/aci:NoSchedule',
    '--log-level': 'info',
    '--node-name': 'aci-connector',
    '--kubelet-client-ca': '/ca.crt',
  };
  assert.doesNotThrow(() => flagsAccepted(flags.map((f) => `${f}=${sample[f] ?? '10'}`)));
});
