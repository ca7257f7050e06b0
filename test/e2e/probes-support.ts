/** What the probe e2e files share: reading a pod's conditions and events, exec, and a port that opens and closes. */
import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import { core } from './connector-process.js';
import { kubectl } from './kubelet-api-support.js';

export const read = (ns: string, name: string) => core().readNamespacedPod({ name, namespace: ns });
export const cond = (p: V1Pod, type: string) => p.status?.conditions?.find((c) => c.type === type);
export const isReady = (p: V1Pod) => cond(p, 'Ready')?.status === 'True';

export async function events(ns: string, name: string): Promise<{ reason: string; message: string; type: string }[]> {
  const list = await core().listNamespacedEvent({ namespace: ns, fieldSelector: `involvedObject.name=${name}` });
  return list.items.map((e) => ({ reason: e.reason ?? '', message: e.message ?? '', type: e.type ?? '' }));
}

export async function execIn(ns: string, pod: string, container: string, ...cmd: string[]): Promise<void> {
  const r = await kubectl(['-n', ns, 'exec', pod, '-c', container, '--', ...cmd]);
  assert.equal(r.code, 0, `exec ${cmd.join(' ')}: ${r.stderr}`);
}

/**
 * A shell loop that serves HTTP on 8080 while /tmp/closed does not exist; the shell itself keeps
 * running. Outside a VNet the emulator publishes a group's declared ports through slirp4netns, whose
 * host side accepts every TCP connection whether or not the container listens (decisions.md): a
 * tcpSocket probe of a declared port passes there anyway. In a VNet the group IP is the pod's own
 * network namespace, and a tcpSocket probe flips with the listener (probes-vnet-podman.test.ts).
 */
export const TOGGLED_PORT =
  'while true; do if [ -f /tmp/closed ]; then if [ -n "$p" ]; then kill $p; wait $p; p=; fi; ' +
  'elif [ -z "$p" ]; then httpd -f -p 8080 -h /tmp & p=$!; fi; sleep 0.2; done';

export const probe = { periodSeconds: 1, timeoutSeconds: 1, failureThreshold: 1 };
