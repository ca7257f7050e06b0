/**
 * The Secrets and ConfigMaps that this node's pods reference, fetched the way a
 * kubelet's watch-based manager fetches them: one watch per object, keyed by
 * name (`fieldSelector=metadata.name=X` in its namespace, which the Node
 * authorizer allows for objects a pod on the node references), held while some
 * pod uses the object and dropped when none does.
 *
 * There is no cluster-wide Secret or ConfigMap informer: a node may not list all
 * Secrets, and caching every value of the cluster costs memory that grows with
 * the cluster instead of with the node's pods.
 */
import type { V1ConfigMap, V1KeyToPath, V1Pod, V1Secret, V1Volume } from '@kubernetes/client-node';
import type { Logger } from '../common/logger.js';
import type { MissingRef } from './env.js';
import { managedInformer, type ManagedInformer } from './informer.js';
import type { KubeAccess } from './kube/access.js';
import type { CoreApi } from './kube/apis.js';

export type RefKind = 'Secret' | 'ConfigMap';

/** `Kind/namespace/name`: one watched object. */
export function refKey(kind: RefKind, namespace: string, name: string): string {
  return `${kind}/${namespace}/${name}`;
}

/** Every Secret and ConfigMap a pod references: env, envFrom, volumes (projected too), azureFile, imagePullSecrets. */
export function podReferences(pod: V1Pod): { secrets: Set<string>; configMaps: Set<string> } {
  const secrets = new Set<string>();
  const configMaps = new Set<string>();
  const add = (set: Set<string>, name: string | undefined) => {
    if (name) set.add(name);
  };
  const spec = pod.spec;
  for (const c of [
    ...(spec?.initContainers ?? []),
    ...(spec?.containers ?? []),
    ...(spec?.ephemeralContainers ?? []),
  ]) {
    for (const src of c.envFrom ?? []) {
      add(secrets, src.secretRef?.name);
      add(configMaps, src.configMapRef?.name);
    }
    for (const e of c.env ?? []) {
      add(secrets, e.valueFrom?.secretKeyRef?.name);
      add(configMaps, e.valueFrom?.configMapKeyRef?.name);
    }
  }
  for (const v of spec?.volumes ?? []) {
    add(secrets, v.secret?.secretName);
    add(configMaps, v.configMap?.name);
    add(secrets, v.azureFile?.secretName);
    for (const s of v.projected?.sources ?? []) {
      add(secrets, s.secret?.name);
      add(configMaps, s.configMap?.name);
    }
  }
  for (const r of spec?.imagePullSecrets ?? []) add(secrets, r.name);
  return { secrets, configMaps };
}

export interface RefLookups {
  getSecret(namespace: string, name: string): V1Secret | undefined;
  getConfigMap(namespace: string, name: string): V1ConfigMap | undefined;
}

function hasKey(kind: RefKind, obj: V1Secret | V1ConfigMap, key: string): boolean {
  if (kind === 'Secret')
    return (obj as V1Secret).data?.[key] !== undefined || (obj as V1Secret).stringData?.[key] !== undefined;
  return (obj as V1ConfigMap).data?.[key] !== undefined || (obj as V1ConfigMap).binaryData?.[key] !== undefined;
}

/**
 * The mandatory volume references that cannot be satisfied now (object or item key
 * missing), as a kubelet finds them before it mounts: the pod waits for them.
 * Optional ones are skipped, as a kubelet skips them.
 */
export function missingVolumeRefs(pod: V1Pod, lookups: RefLookups): MissingRef[] {
  const ns = pod.metadata?.namespace ?? 'default';
  const out: MissingRef[] = [];
  const check = (
    kind: RefKind,
    name: string | undefined,
    optional: boolean | undefined,
    items: readonly V1KeyToPath[] | undefined,
    field: string,
  ) => {
    if (!name || optional) return;
    const obj = kind === 'Secret' ? lookups.getSecret(ns, name) : lookups.getConfigMap(ns, name);
    if (!obj) {
      out.push({ kind, name, container: '', field });
      return;
    }
    (items ?? []).forEach((it, i) => {
      if (!hasKey(kind, obj, it.key))
        out.push({ kind, name, key: it.key, container: '', field: `${field}.items[${i}].key` });
    });
  };
  (pod.spec?.volumes ?? []).forEach((v: V1Volume, i) => {
    const field = `spec.volumes[${i}]`;
    if (v.secret) check('Secret', v.secret.secretName, v.secret.optional, v.secret.items, `${field}.secret`);
    if (v.configMap)
      check('ConfigMap', v.configMap.name, v.configMap.optional, v.configMap.items, `${field}.configMap`);
    if (v.azureFile) check('Secret', v.azureFile.secretName, false, undefined, `${field}.azureFile.secretName`);
    (v.projected?.sources ?? []).forEach((s, j) => {
      const f = `${field}.projected.sources[${j}]`;
      if (s.secret) check('Secret', s.secret.name, s.secret.optional, s.secret.items, `${f}.secret`);
      if (s.configMap) check('ConfigMap', s.configMap.name, s.configMap.optional, s.configMap.items, `${f}.configMap`);
    });
  });
  return out;
}

interface Watched {
  kind: RefKind;
  namespace: string;
  name: string;
  informer: ManagedInformer<V1Secret | V1ConfigMap>;
  /** Pod keys that reference this object. */
  users: Set<string>;
  /** Resolves once the first list landed (the object's presence is known). */
  synced: Promise<void>;
  isSynced: boolean;
}

export interface ReferenceResolverOptions {
  kc: KubeAccess;
  /** The rate-limited client for the lists. */
  core: Pick<CoreApi, 'listNamespacedSecret' | 'listNamespacedConfigMap'>;
  log: Logger;
  /** A watched object appeared, changed or went away. */
  onChange(kind: RefKind, namespace: string, name: string): void;
  /** How long use() waits for a new watch's first list before treating the object as absent (it is retried on the watch). */
  syncTimeoutMs?: number;
}

export class ReferenceResolver implements RefLookups {
  private readonly watched = new Map<string, Watched>();
  private readonly usedBy = new Map<string, Set<string>>();
  private stopped = false;

  constructor(private readonly o: ReferenceResolverOptions) {}

  /** Objects watched now (for tests and metrics). */
  get watchCount(): number {
    return this.watched.size;
  }

  /**
   * Makes the pod (by key) a user of every object it references, starting a watch for
   * each one not yet watched and dropping its use of objects it no longer references.
   * Resolves once each watch has its first list, or after syncTimeoutMs (the object then
   * counts as absent until its watch sees it).
   */
  async use(podKey: string, pod: V1Pod): Promise<void> {
    if (this.stopped) return;
    const ns = pod.metadata?.namespace ?? '';
    const refs = podReferences(pod);
    const wanted = new Set<string>([
      ...[...refs.secrets].map((n) => refKey('Secret', ns, n)),
      ...[...refs.configMaps].map((n) => refKey('ConfigMap', ns, n)),
    ]);
    for (const k of this.usedBy.get(podKey) ?? []) if (!wanted.has(k)) this.drop(podKey, k);
    this.usedBy.set(podKey, wanted);
    const pending: Promise<void>[] = [];
    for (const n of refs.secrets) pending.push(this.watch('Secret', ns, n, podKey));
    for (const n of refs.configMaps) pending.push(this.watch('ConfigMap', ns, n, podKey));
    if (pending.length === 0) {
      this.usedBy.delete(podKey);
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((r) => (timer = setTimeout(r, this.o.syncTimeoutMs ?? 10_000)));
    await Promise.race([Promise.all(pending), timeout]);
    clearTimeout(timer);
  }

  /** The pod no longer needs any reference (gone, or finished). */
  release(podKey: string): void {
    for (const k of this.usedBy.get(podKey) ?? []) this.drop(podKey, k);
    this.usedBy.delete(podKey);
  }

  getSecret(namespace: string, name: string): V1Secret | undefined {
    return this.lookup('Secret', namespace, name);
  }

  getConfigMap(namespace: string, name: string): V1ConfigMap | undefined {
    return this.lookup('ConfigMap', namespace, name);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const all = [...this.watched.values()];
    this.watched.clear();
    this.usedBy.clear();
    await Promise.all(all.map((w) => w.informer.stop()));
  }

  private lookup(kind: RefKind, namespace: string, name: string): V1Secret | V1ConfigMap | undefined {
    const w = this.watched.get(refKey(kind, namespace, name));
    if (!w?.isSynced) return undefined;
    return w.informer.cache.get(name, namespace);
  }

  private watch(kind: RefKind, namespace: string, name: string, podKey: string): Promise<void> {
    const key = refKey(kind, namespace, name);
    let w = this.watched.get(key);
    if (!w) {
      const fieldSelector = `metadata.name=${name}`;
      const core = this.o.core;
      const plural = kind === 'Secret' ? 'secrets' : 'configmaps';
      const list =
        kind === 'Secret'
          ? () => core.listNamespacedSecret({ namespace, fieldSelector })
          : () => core.listNamespacedConfigMap({ namespace, fieldSelector });
      const informer = managedInformer<V1Secret | V1ConfigMap>(
        this.o.kc,
        `/api/v1/namespaces/${namespace}/${plural}`,
        list,
        { fieldSelector, log: this.o.log, what: `${kind} ${namespace}/${name}` },
      );
      const entry: Watched = {
        kind,
        namespace,
        name,
        informer,
        users: new Set(),
        synced: Promise.resolve(),
        isSynced: false,
      };
      const changed = () => {
        if (!this.stopped && this.watched.get(key) === entry) this.o.onChange(kind, namespace, name);
      };
      informer.cache.on('add', changed);
      informer.cache.on('update', changed);
      informer.cache.on('delete', changed);
      entry.synced = informer.start().then(() => {
        entry.isSynced = true;
        // A pod that counted the object as absent while the list was pending gets another look.
        changed();
      });
      this.watched.set(key, entry);
      w = entry;
    }
    w.users.add(podKey);
    return w.synced;
  }

  private drop(podKey: string, key: string): void {
    const w = this.watched.get(key);
    if (!w) return;
    w.users.delete(podKey);
    if (w.users.size > 0) return;
    this.watched.delete(key);
    void w.informer
      .stop()
      .catch((err: unknown) => this.o.log.debug({ err: String(err), ref: key }, 'stopping a reference watch failed'));
  }
}
