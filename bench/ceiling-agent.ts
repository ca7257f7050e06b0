/**
 * The benchmark's ceiling: the least any agent of a node with endless capacity must
 * do against the API server. It registers its Node (and renews its Lease so the node
 * stays Ready), lists and watches the pods bound to it, writes one status per pod
 * (phase Running, Ready conditions, podIP, containerStatuses), and sends the final
 * delete (grace 0) of each pod whose deletionTimestamp is set. Nothing else: no
 * events, no provider, no retries beyond re-queueing a failed write.
 *
 *   node dist/bench/ceiling-agent.js --kubeconfig FILE --node-name NAME [--concurrency 64]
 *
 * Plain HTTPS and a hand-rolled watch on purpose, no informer library: the point is
 * the floor of the API cost (one LIST, one WATCH, one write per pod), so nothing of a
 * client library's caching, deep copies or rate limiting may be counted in it.
 */
import { readFileSync } from 'node:fs';
import { Agent, request, type RequestOptions } from 'node:https';
import { parseArgs } from 'node:util';
import { parse } from 'yaml';

interface Kubeconfig {
  clusters: Array<{ cluster: { server: string; 'certificate-authority': string } }>;
  users: Array<{ user: { 'client-certificate': string; 'client-key': string } }>;
}

interface PodLite {
  metadata: { name: string; namespace: string; uid: string; resourceVersion?: string; deletionTimestamp?: string };
  spec: { containers: Array<{ name: string; image: string }> };
  status?: { phase?: string };
}

const { values } = parseArgs({
  options: {
    kubeconfig: { type: 'string' },
    'node-name': { type: 'string' },
    concurrency: { type: 'string', default: '64' },
  },
});
if (!values.kubeconfig || !values['node-name']) {
  console.error('usage: ceiling-agent --kubeconfig FILE --node-name NAME [--concurrency 64]');
  process.exit(2);
}
const nodeName = values['node-name'];
const concurrency = Number(values.concurrency);
const kc = parse(readFileSync(values.kubeconfig, 'utf8')) as Kubeconfig;
const cluster = kc.clusters[0]?.cluster;
const user = kc.users[0]?.user;
if (!cluster || !user) throw new Error('kubeconfig without a cluster or user');
const server = new URL(cluster.server);
const tls = {
  ca: readFileSync(cluster['certificate-authority']),
  cert: readFileSync(user['client-certificate']),
  key: readFileSync(user['client-key']),
};
const agent = new Agent({ keepAlive: true, maxSockets: concurrency + 2, ...tls });
const watchAgent = new Agent({ keepAlive: false, ...tls });

class HttpError extends Error {
  constructor(
    readonly status: number,
    body: string,
  ) {
    super(`HTTP ${status}: ${body.slice(0, 300)}`);
  }
}

function call(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const opts: RequestOptions = {
      host: server.hostname,
      port: server.port,
      method,
      path,
      agent,
      headers: {
        accept: 'application/json',
        'user-agent': 'bench-ceiling',
        ...(payload ? { 'content-type': contentType, 'content-length': Buffer.byteLength(payload) } : {}),
      },
    };
    const req = request(opts, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if ((res.statusCode ?? 0) >= 300) reject(new HttpError(res.statusCode ?? 0, text));
        else resolve(text ? JSON.parse(text) : undefined);
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

// ---- node and lease ----
async function registerNode(): Promise<void> {
  const now = new Date().toISOString();
  const ready = {
    type: 'Ready',
    status: 'True',
    reason: 'CeilingReady',
    message: 'ceiling agent',
    lastHeartbeatTime: now,
    lastTransitionTime: now,
  };
  const node = {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: nodeName, labels: { 'kubernetes.io/hostname': nodeName, type: 'bench-ceiling' } },
    spec: {},
    status: {
      capacity: { cpu: '100k', memory: '100Ti', pods: '1M' },
      allocatable: { cpu: '100k', memory: '100Ti', pods: '1M' },
      conditions: [ready],
      addresses: [{ type: 'InternalIP', address: '127.0.0.1' }],
      nodeInfo: { kubeletVersion: 'ceiling', architecture: 'amd64', operatingSystem: 'linux' },
    },
  };
  try {
    await call('POST', '/api/v1/nodes', node);
  } catch (err) {
    if (!(err instanceof HttpError && err.status === 409)) throw err;
    await call(
      'PATCH',
      `/api/v1/nodes/${nodeName}/status`,
      { status: { conditions: [ready] } },
      'application/strategic-merge-patch+json',
    );
  }
}

async function renewLease(): Promise<void> {
  const path = `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${nodeName}`;
  const spec = {
    holderIdentity: nodeName,
    leaseDurationSeconds: 40,
    renewTime: new Date().toISOString().replace('Z', '000Z'),
  };
  try {
    await call('PATCH', path, { spec }, 'application/merge-patch+json');
  } catch (err) {
    if (!(err instanceof HttpError && err.status === 404)) throw err;
    await call('POST', '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases', {
      metadata: { name: nodeName },
      spec,
    });
  }
}

// ---- the work: one status write per pod, one final delete per terminating pod ----
const written = new Set<string>();
const deleted = new Set<string>();
const queue: Array<() => Promise<void>> = [];
let active = 0;
let nextIP = 1;

function pump(): void {
  while (active < concurrency && queue.length > 0) {
    const job = queue.shift() as () => Promise<void>;
    active++;
    void job().finally(() => {
      active--;
      pump();
    });
  }
}

function runningStatus(pod: PodLite): unknown {
  const now = new Date().toISOString();
  const n = nextIP++;
  const ip = `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
  const cond = (type: string) => ({ type, status: 'True', lastTransitionTime: now });
  return {
    status: {
      phase: 'Running',
      conditions: [
        cond('PodReadyToStartContainers'),
        cond('Initialized'),
        cond('Ready'),
        cond('ContainersReady'),
        cond('PodScheduled'),
      ],
      hostIP: '127.0.0.1',
      hostIPs: [{ ip: '127.0.0.1' }],
      podIP: ip,
      podIPs: [{ ip }],
      startTime: now,
      containerStatuses: pod.spec.containers.map((c) => ({
        name: c.name,
        image: c.image,
        imageID: '',
        containerID: `ceiling://${pod.metadata.uid}/${c.name}`,
        ready: true,
        started: true,
        restartCount: 0,
        state: { running: { startedAt: now } },
      })),
    },
  };
}

function onPod(pod: PodLite): void {
  const { uid, name, namespace } = pod.metadata;
  const base = `/api/v1/namespaces/${namespace}/pods/${name}`;
  if (pod.metadata.deletionTimestamp) {
    if (deleted.has(uid)) return;
    deleted.add(uid);
    queue.push(async () => {
      try {
        await call('DELETE', base, { gracePeriodSeconds: 0, preconditions: { uid } });
      } catch (err) {
        if (!(err instanceof HttpError && (err.status === 404 || err.status === 409))) {
          deleted.delete(uid); // the next event retries
          console.error(`delete ${namespace}/${name}: ${String(err)}`);
        }
      }
    });
  } else if (pod.status?.phase !== 'Running' && !written.has(uid)) {
    written.add(uid);
    queue.push(async () => {
      try {
        await call('PATCH', `${base}/status`, runningStatus(pod), 'application/merge-patch+json');
      } catch (err) {
        written.delete(uid);
        if (!(err instanceof HttpError && err.status === 404))
          console.error(`status ${namespace}/${name}: ${String(err)}`);
      }
    });
  }
  pump();
}

const selector = encodeURIComponent(`spec.nodeName=${nodeName}`);

async function list(): Promise<string> {
  let cont = '';
  let rv = '';
  do {
    const page = (await call(
      'GET',
      `/api/v1/pods?fieldSelector=${selector}&limit=500${cont ? `&continue=${encodeURIComponent(cont)}` : ''}`,
    )) as {
      items: PodLite[];
      metadata: { resourceVersion: string; continue?: string };
    };
    for (const p of page.items) onPod(p);
    rv = page.metadata.resourceVersion;
    cont = page.metadata.continue ?? '';
  } while (cont);
  return rv;
}

/** One watch connection; resolves with the last resourceVersion seen, or '' when it must relist. */
function watchOnce(rv: string): Promise<string> {
  return new Promise((resolve) => {
    let last = rv;
    const req = request(
      {
        host: server.hostname,
        port: server.port,
        path: `/api/v1/pods?watch=1&allowWatchBookmarks=true&fieldSelector=${selector}&resourceVersion=${rv}&timeoutSeconds=600`,
        agent: watchAgent,
        headers: { accept: 'application/json', 'user-agent': 'bench-ceiling' },
      },
      (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          resolve('');
          return;
        }
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buf += chunk;
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            if (!line) continue;
            const ev = JSON.parse(line) as { type: string; object: PodLite & { code?: number } };
            if (ev.type === 'ERROR') {
              last = ''; // 410 Gone and the like: relist
              continue;
            }
            if (ev.object.metadata.resourceVersion) last = ev.object.metadata.resourceVersion;
            if (ev.type === 'ADDED' || ev.type === 'MODIFIED') onPod(ev.object);
          }
        });
        res.on('end', () => resolve(last));
        res.on('error', () => resolve(last));
      },
    );
    req.on('error', () => resolve(last));
    req.end();
  });
}

async function main(): Promise<void> {
  await registerNode();
  await renewLease();
  setInterval(() => void renewLease().catch((err: unknown) => console.error(`lease: ${String(err)}`)), 10_000);
  let rv = await list();
  console.log(JSON.stringify({ msg: 'ceiling agent running', node: nodeName }));
  for (;;) {
    rv = await watchOnce(rv);
    if (!rv) rv = await list();
  }
}

process.on('SIGTERM', () => process.exit(0));
main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exit(1);
});
