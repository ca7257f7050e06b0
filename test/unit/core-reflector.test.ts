import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import { silentLogger } from '../../src/common/logger.js';
import { lines, Reflector, type ReflectorSource } from '../../src/core/kube/reflector.js';

type Obj = KubernetesObject & { v?: number };

const obj = (name: string, rv: string, v = 0, extra: Partial<Obj['metadata']> = {}): Obj => ({
  metadata: { name, namespace: 'ns', resourceVersion: rv, ...extra },
  v,
});
const ev = (type: string, object: unknown) => JSON.stringify({ type, object }) + '\n';

/** One scripted watch: the chunks it sends, then how it ends. */
interface Script {
  chunks: string[];
  end: 'close' | 'drop' | 'gone' | 'hang';
}

function fakeSource(lists: Array<Obj[] | Error>, listRvs: string[], watches: Script[]) {
  const watchedFrom: string[] = [];
  let listCalls = 0;
  let idle: (() => void) | undefined;
  const source: ReflectorSource<Obj> = {
    async list(): Promise<KubernetesListObject<Obj>> {
      const i = listCalls++;
      const l = lists[Math.min(i, lists.length - 1)];
      if (l instanceof Error) throw l;
      return {
        apiVersion: 'v1',
        kind: 'List',
        metadata: { resourceVersion: listRvs[i] ?? '' },
        items: structuredClone(l ?? []),
      };
    },
    async watch(rv, signal) {
      watchedFrom.push(rv);
      const s = watches.shift() ?? { chunks: [], end: 'hang' };
      if (s.end === 'gone') throw Object.assign(new Error('Gone'), { code: 410 });
      return (async function* () {
        for (const c of s.chunks) yield c;
        if (s.end === 'drop') throw new Error('socket hang up');
        if (s.end === 'hang') {
          idle?.();
          await new Promise<void>((r) => signal.addEventListener('abort', () => r()));
        }
      })();
    },
  };
  return {
    source,
    watchedFrom,
    get listCalls() {
      return listCalls;
    },
    /** Resolves when the reflector sits in a watch that sends nothing more. */
    idle: () => new Promise<void>((r) => (idle = r)),
  };
}

function record(r: Reflector<Obj>) {
  const seen: string[] = [];
  r.on('add', (o) => seen.push(`add ${o.metadata?.name}@${o.metadata?.resourceVersion}`));
  r.on('update', (o) => seen.push(`update ${o.metadata?.name}@${o.metadata?.resourceVersion}`));
  r.on('delete', (o) => seen.push(`delete ${o.metadata?.name}`));
  return seen;
}

const fast = { startBackoff: { baseMs: 1, maxMs: 2 }, retryBackoff: { baseMs: 1, maxMs: 2 } };

test('lines: a chunk may end mid-line or hold several lines', async () => {
  async function* chunks() {
    yield '{"a":';
    yield Buffer.from('1}\n{"b":2}\n\n{"c"');
    yield ':3}';
  }
  const out: string[] = [];
  for await (const l of lines(chunks())) out.push(l);
  assert.deepEqual(out, ['{"a":1}', '{"b":2}', '{"c":3}']);
});

test('lines: a character split between two chunks arrives whole', async () => {
  const bytes = Buffer.from('{"v":"é€"}\n');
  async function* chunks() {
    yield bytes.subarray(0, 7); // inside é's two bytes
    yield bytes.subarray(7, 9); // inside €'s three bytes
    yield bytes.subarray(9);
  }
  const out: string[] = [];
  for await (const l of lines(chunks())) out.push(l);
  assert.deepEqual(out, ['{"v":"é€"}']);
});

test('list, then watch from its resourceVersion: events reach the cache and the handlers; a bookmark moves the version; managedFields are trimmed', async () => {
  const f = fakeSource(
    [[obj('a', '1')]],
    ['10'],
    [
      {
        chunks: [
          ev('ADDED', obj('b', '11', 0, { managedFields: [{ manager: 'x' }] })),
          ev('MODIFIED', obj('a', '12', 1)).slice(0, 7),
          ev('MODIFIED', obj('a', '12', 1)).slice(7),
          ev('BOOKMARK', { metadata: { resourceVersion: '15' } }),
          ev('DELETED', obj('b', '16')),
        ],
        end: 'hang',
      },
    ],
  );
  const r = new Reflector<Obj>({
    source: f.source,
    log: silentLogger(),
    what: 't',
    transform: (o) => delete o.metadata?.managedFields,
    ...fast,
  });
  const seen = record(r);
  let addedB: Obj | undefined;
  r.on('add', (o) => (addedB = o.metadata?.name === 'b' ? o : addedB));
  const idle = f.idle();
  await r.start();
  assert.equal(r.list().length, 1, 'synced: the list is in the cache when start() resolves');
  await idle;
  assert.deepEqual(seen, ['add a@1', 'add b@11', 'update a@12', 'delete b']);
  assert.deepEqual(f.watchedFrom, ['10']);
  assert.equal(r.get('a', 'ns')?.v, 1);
  assert.equal(r.get('b', 'ns'), undefined);
  assert.ok(addedB && addedB.metadata?.managedFields === undefined, 'trimmed before the handlers see it');
  assert.equal(r.lastResourceVersion, '16');
  assert.equal(r.list('other').length, 0);
  await r.stop();
});

test('a dropped watch and one the server ends are resumed from the last version, without a relist', async () => {
  const f = fakeSource(
    [[]],
    ['5'],
    [
      { chunks: [ev('ADDED', obj('a', '6')), ev('BOOKMARK', { metadata: { resourceVersion: '8' } })], end: 'drop' },
      { chunks: [ev('MODIFIED', obj('a', '9', 2))], end: 'close' },
      { chunks: [], end: 'hang' },
    ],
  );
  const r = new Reflector<Obj>({ source: f.source, log: silentLogger(), what: 't', ...fast });
  const seen = record(r);
  const idle = f.idle();
  await r.start();
  await idle;
  assert.deepEqual(f.watchedFrom, ['5', '8', '9']);
  assert.equal(f.listCalls, 1);
  assert.deepEqual(seen, ['add a@6', 'update a@9']);
  assert.equal(r.stats.resumes, 2);
  await r.stop();
});

test('410 Gone (an answer or an ERROR event) relists: objects gone meanwhile are deleted, changed ones updated, unchanged ones quiet', async () => {
  const f = fakeSource(
    [
      [obj('a', '1'), obj('b', '2'), obj('c', '3')],
      [obj('a', '1'), obj('b', '20', 5), obj('d', '21')],
      [obj('a', '1')],
    ],
    ['3', '22', '30'],
    [
      { chunks: [], end: 'gone' },
      {
        chunks: [ev('ERROR', { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version' })],
        end: 'close',
      },
      { chunks: [], end: 'hang' },
    ],
  );
  const r = new Reflector<Obj>({ source: f.source, log: silentLogger(), what: 't', ...fast });
  const seen = record(r);
  const idle = f.idle();
  await r.start();
  await idle;
  assert.deepEqual(seen, [
    'add a@1',
    'add b@2',
    'add c@3',
    'update b@20',
    'add d@21',
    'delete c',
    'delete b',
    'delete d',
  ]);
  assert.deepEqual(f.watchedFrom, ['3', '22', '30']);
  assert.equal(r.stats.relists, 2);
  assert.deepEqual(
    r.list().map((o) => o.metadata?.name),
    ['a'],
  );
  await r.stop();
});

test('a failing first list is retried until it lands; start() resolves only then; stop() ends the watch', async () => {
  const f = fakeSource(
    [new Error('connection refused'), new Error('503'), [obj('a', '1')]],
    ['', '', '7'],
    [{ chunks: [], end: 'hang' }],
  );
  const r = new Reflector<Obj>({ source: f.source, log: silentLogger(), what: 't', ...fast });
  const idle = f.idle();
  await r.start();
  assert.equal(f.listCalls, 3);
  assert.equal(r.get('a', 'ns')?.metadata?.resourceVersion, '1');
  await idle;
  await r.stop();
  assert.equal(r.stats.watches, 1);
});

test('a watch error other than 410 backs off and resumes; a handler that throws does not stop the reflector', async () => {
  const f = fakeSource(
    [[]],
    ['1'],
    [
      { chunks: [ev('ERROR', { kind: 'Status', code: 500, message: 'internal error' })], end: 'close' },
      { chunks: [ev('ADDED', obj('a', '2')), ev('ADDED', obj('b', '3'))], end: 'hang' },
    ],
  );
  const r = new Reflector<Obj>({ source: f.source, log: silentLogger(), what: 't', ...fast });
  let calls = 0;
  r.on('add', () => {
    calls++;
    throw new Error('handler bug');
  });
  const idle = f.idle();
  await r.start();
  await idle;
  assert.deepEqual(f.watchedFrom, ['1', '1']);
  assert.equal(f.listCalls, 1);
  assert.equal(calls, 2);
  assert.equal(r.list().length, 2);
  await r.stop();
});

test('a second start() while the first list is failing waits for the same list: no caller sees an empty cache', async () => {
  const f = fakeSource([new Error('connection refused'), [obj('a', '1')]], ['', '3'], [{ chunks: [], end: 'hang' }]);
  const r = new Reflector<Obj>({ source: f.source, log: silentLogger(), what: 't', ...fast });
  const first = r.start();
  await r.start();
  assert.equal(r.get('a', 'ns')?.metadata?.resourceVersion, '1', 'the second caller resolved after the list landed');
  await first;
  assert.equal(f.listCalls, 2);
  await r.stop();
});
