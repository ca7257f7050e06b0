/**
 * What the reference resolver watches for a pod, and which volume references keep it waiting.
 * The watches themselves are proven against the real control plane (test/e2e/node-identity, pods-env).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { V1ConfigMap, V1Pod, V1Secret } from '@kubernetes/client-node';
import { missingVolumeRefs, podReferences } from '../../src/core/references.js';

const pod: V1Pod = {
  metadata: { name: 'p', namespace: 'ns', uid: 'u' },
  spec: {
    imagePullSecrets: [{ name: 'pull' }],
    initContainers: [{ name: 'init', image: 'x', envFrom: [{ secretRef: { name: 'init-env' } }] }],
    containers: [
      {
        name: 'main',
        image: 'x',
        envFrom: [{ configMapRef: { name: 'cm-env' } }],
        env: [
          { name: 'A', valueFrom: { secretKeyRef: { name: 'key-secret', key: 'a' } } },
          { name: 'B', valueFrom: { configMapKeyRef: { name: 'key-cm', key: 'b' } } },
        ],
      },
    ],
    volumes: [
      { name: 's', secret: { secretName: 'vol-secret', items: [{ key: 'k', path: 'k' }] } },
      { name: 'c', configMap: { name: 'vol-cm', optional: true } },
      { name: 'az', azureFile: { secretName: 'az-secret', shareName: 'share' } },
      {
        name: 'pj',
        projected: {
          sources: [
            { secret: { name: 'pj-secret' } },
            { configMap: { name: 'pj-cm' } },
            { serviceAccountToken: { path: 't' } },
          ],
        },
      },
    ],
  },
};

test('podReferences collects env, envFrom, volumes, projected sources, azureFile and imagePullSecrets', () => {
  const r = podReferences(pod);
  assert.deepEqual([...r.secrets].sort(), ['az-secret', 'init-env', 'key-secret', 'pj-secret', 'pull', 'vol-secret']);
  assert.deepEqual([...r.configMaps].sort(), ['cm-env', 'key-cm', 'pj-cm', 'vol-cm']);
});

test('missingVolumeRefs: absent mandatory objects and item keys wait; optional ones do not', () => {
  const secrets = new Map<string, V1Secret>([['ns/vol-secret', { data: { other: 'eA==' } }]]);
  const cms = new Map<string, V1ConfigMap>();
  const missing = missingVolumeRefs(pod, {
    getSecret: (n, name) => secrets.get(`${n}/${name}`),
    getConfigMap: (n, name) => cms.get(`${n}/${name}`),
  });
  assert.deepEqual(
    missing.map((m) => [m.kind, m.name, m.key, m.field]),
    [
      ['Secret', 'vol-secret', 'k', 'spec.volumes[0].secret.items[0].key'],
      ['Secret', 'az-secret', undefined, 'spec.volumes[2].azureFile.secretName'],
      ['Secret', 'pj-secret', undefined, 'spec.volumes[3].projected.sources[0].secret'],
      ['ConfigMap', 'pj-cm', undefined, 'spec.volumes[3].projected.sources[1].configMap'],
    ],
  );
  secrets.set('ns/vol-secret', { data: { k: 'eA==' } });
  secrets.set('ns/az-secret', { data: {} });
  secrets.set('ns/pj-secret', { data: {} });
  cms.set('ns/pj-cm', { data: {} });
  assert.deepEqual(
    missingVolumeRefs(pod, {
      getSecret: (n, name) => secrets.get(`${n}/${name}`),
      getConfigMap: (n, name) => cms.get(`${n}/${name}`),
    }),
    [],
  );
});
