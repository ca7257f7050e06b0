/**
 * The deploy manifests run the connector with TLS bootstrap: both the example
 * and the chart's Deployment pass --cert-dir on a mounted emptyDir, and both
 * bind the ServiceAccount to the two standard bootstrap ClusterRoles (the same
 * ones test/e2e/node-bootstrap gives its ServiceAccount).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { repoRoot } from '../../devcluster/cluster.js';

const read = (p: string) => readFileSync(join(repoRoot, p), 'utf8');
const BOOTSTRAP_ROLES = [
  'system:certificates.k8s.io:certificatesigningrequests:nodeclient',
  'system:node-bootstrapper',
];

interface Binding {
  kind: string;
  roleRef?: { name: string };
  subjects?: { kind: string; name: string }[];
}

interface Deployment {
  kind: string;
  spec: {
    template: {
      spec: {
        containers: { args: string[]; volumeMounts?: { name: string; mountPath: string }[] }[];
        volumes?: { name: string; emptyDir?: object }[];
      };
    };
  };
}

/** Replaces the chart's {{ … }} expressions so its templates parse as YAML. */
function untemplate(text: string): string {
  return text
    .split('\n')
    .filter((l) => !/^\s*\{\{-?.*-?\}\}\s*$/.test(l))
    .join('\n')
    .replace(/\{\{[^}]*\}\}/g, 'x');
}

function bootstrapRolesOf(docs: Binding[], sa: string): string[] {
  return docs
    .filter(
      (d) => d.kind === 'ClusterRoleBinding' && d.subjects?.some((s) => s.kind === 'ServiceAccount' && s.name === sa),
    )
    .map((d) => d.roleRef?.name ?? '')
    .filter((n) => n.startsWith('system:'))
    .sort();
}

function checkDeployment(dep: Deployment | undefined): void {
  assert.ok(dep);
  const spec = dep.spec.template.spec;
  const c = spec.containers[0];
  assert.ok(c);
  const certDir = c.args.find((a) => a.startsWith('--cert-dir='))?.slice('--cert-dir='.length);
  assert.ok(certDir, 'passes --cert-dir');
  assert.ok(!c.args.some((a) => a.startsWith('--kubeconfig')), 'no --kubeconfig next to TLS bootstrap');
  const mount = c.volumeMounts?.find((m) => m.mountPath === certDir);
  assert.ok(mount, 'the cert dir is a mounted volume');
  assert.ok(spec.volumes?.find((v) => v.name === mount.name)?.emptyDir, 'an emptyDir');
}

test('examples/: the ServiceAccount has the bootstrap bindings and the Deployment bootstraps into an emptyDir', () => {
  const rbac = parseAllDocuments(read('examples/rbac.yaml')).map((d) => d.toJS() as Binding);
  assert.deepEqual(bootstrapRolesOf(rbac, 'aci-connector'), BOOTSTRAP_ROLES);
  const docs = parseAllDocuments(read('examples/aci-connector.yaml')).map((d) => d.toJS() as Deployment);
  checkDeployment(docs.find((d) => d.kind === 'Deployment'));
});

test('the chart: the same bindings and the same cert dir', () => {
  const rbac = parseAllDocuments(untemplate(read('charts/aci-connector/templates/bootstrap-rbac.yaml'))).map(
    (d) => d.toJS() as Binding,
  );
  assert.deepEqual(bootstrapRolesOf(rbac, 'x'), BOOTSTRAP_ROLES);
  const dep = parseAllDocuments(untemplate(read('charts/aci-connector/templates/deployment.yaml'))).map(
    (d) => d.toJS() as Deployment,
  );
  checkDeployment(dep.find((d) => d.kind === 'Deployment'));
});
