/**
 * The podman runtime against real podman: groups are real pods, reached over
 * their loopback IPs. Drives the runtime through ContainerGroupRuntime only.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import { createPodmanRuntime } from '../../src/emulator/runtimes/podman/index.js';
import type { PodmanRuntime } from '../../src/emulator/runtimes/podman/podman-runtime.js';
import { RuntimeProvisionError, type RuntimeContainerSpec, type RuntimeGroupSpec } from '../../src/emulator/runtime.js';
import { waitFor } from '../support/wait.js';
import { podmanTestStateDir } from '../support/images.js';
import { collect, podmanFixture, type PodmanFixture } from './podman-fixtures.js';

const TIMEOUT = 240_000;

let fx: PodmanFixture;
let runtime: PodmanRuntime;
const container = (name: string, command: string[], extra?: Partial<RuntimeContainerSpec>) =>
  fx.container(name, command, extra);
const group = (name: string, containers: RuntimeContainerSpec[], extra?: Partial<RuntimeGroupSpec>) =>
  fx.group(name, containers, extra);
const createGroup = (t: TestContext, spec: RuntimeGroupSpec) => fx.createGroup(t, spec);
const podsOf = (label: string) => fx.podsOf(label);

describe('podman runtime', { timeout: 15 * 60_000 }, () => {
  before(async () => {
    fx = await podmanFixture();
    runtime = fx.runtime;
  });

  after(async () => {
    await runtime?.close();
  });

  it(
    'serves HTTP from a busybox httpd group on its published loopback address, with env, secure env and a secret volume',
    { timeout: TIMEOUT },
    async (t) => {
      const spec = group(
        'httpd',
        [
          container(
            'web',
            [
              'sh',
              '-c',
              'echo "$GREETING" > /www/index.html && cp /mnt/secrets/token /www/token.txt && echo "$PASSWORD" > /www/pw.txt && exec httpd -f -p 8080 -h /www',
            ],
            {
              env: [
                { name: 'GREETING', value: 'hello from aci', secure: false },
                { name: 'PASSWORD', value: 's3cret value', secure: true },
              ],
              ports: [{ port: 8080, protocol: 'TCP' }],
              volumeMounts: [{ name: 'secrets', mountPath: '/mnt/secrets', readOnly: true }],
            },
          ),
        ],
        {
          ipAddress: { type: 'Public', ports: [{ port: 8080, protocol: 'TCP' }] },
          volumes: [{ name: 'secrets', secret: { token: Buffer.from('token-bytes') } }],
        },
      );
      await createGroup(t, spec);
      const ip = runtime.view(spec.id)?.ip;
      assert.ok(ip, 'the group has an IP');
      assert.match(ip, /^127\.20\.\d+\.\d+$/);
      const body = await waitFor(
        'httpd to answer',
        async () => {
          const res = await fetch(`http://${ip}:8080/`, { signal: AbortSignal.timeout(10_000) });
          return res.ok ? res.text() : undefined;
        },
        { timeoutMs: 60_000 },
      );
      assert.equal(body, 'hello from aci\n');
      assert.equal(
        await (await fetch(`http://${ip}:8080/token.txt`, { signal: AbortSignal.timeout(10_000) })).text(),
        'token-bytes',
      );
      assert.equal(
        await (await fetch(`http://${ip}:8080/pw.txt`, { signal: AbortSignal.timeout(10_000) })).text(),
        's3cret value\n',
      );
      // Started comes from podman's event stream, which may trail `podman ps` a little.
      const view = await waitFor('the view to show Running and Started', () => {
        const v = runtime.view(spec.id);
        return v?.state === 'Running' &&
          v.containers.web?.currentState.state === 'Running' &&
          v.containers.web.events.some((e) => e.name === 'Started')
          ? v
          : undefined;
      });
      const web = view.containers.web;
      assert.ok(web);
      assert.ok(web.currentState.startTime instanceof Date);
      assert.deepEqual(web.events.map((e) => e.name).sort(), ['Pulled', 'Pulling', 'Started']);
    },
  );

  it('lets the containers of one group reach each other on localhost', { timeout: TIMEOUT }, async (t) => {
    const spec = group('pair', [
      container('server', ['sh', '-c', 'echo shared-localhost > /www/index.html && exec httpd -f -p 8081 -h /www']),
      container('client', [
        'sh',
        '-c',
        'until wget -q -O /tmp/got http://127.0.0.1:8081/; do sleep 0.2; done; echo "got: $(cat /tmp/got)"; exec sleep 3600',
      ]),
    ]);
    await createGroup(t, spec);
    const logs = await waitFor(
      'the client to fetch from the server',
      async () => {
        const l = await runtime.logs(spec.id, 'client', {});
        return l.includes('got: shared-localhost') ? l : undefined;
      },
      { timeoutMs: 60_000 },
    );
    assert.match(logs, /got: shared-localhost/);
  });

  it('reports exit codes and restart counts for Never, OnFailure and Always', { timeout: TIMEOUT }, async (t) => {
    const failing = ['sh', '-c', 'echo run; exit 3'];
    const succeeding = ['sh', '-c', 'echo run; exit 0'];
    const never = group('never', [container('c', failing)], { restartPolicy: 'Never' });
    const onFailureBad = group('onfailure-bad', [container('c', failing)], { restartPolicy: 'OnFailure' });
    const onFailureGood = group('onfailure-good', [container('c', succeeding)], { restartPolicy: 'OnFailure' });
    const always = group('always', [container('c', succeeding)], { restartPolicy: 'Always' });
    await Promise.all([never, onFailureBad, onFailureGood, always].map((g) => createGroup(t, g)));

    const neverView = await waitFor('Never to end Failed', () => {
      const v = runtime.view(never.id);
      return v?.state === 'Failed' ? v : undefined;
    });
    assert.equal(neverView.containers.c?.currentState.state, 'Terminated');
    assert.equal(neverView.containers.c?.currentState.exitCode, 3);
    assert.equal(neverView.containers.c?.currentState.detailStatus, 'Error');
    assert.ok(neverView.containers.c?.currentState.finishTime instanceof Date);

    const goodView = await waitFor('OnFailure with exit 0 to end Succeeded', () => {
      const v = runtime.view(onFailureGood.id);
      return v?.state === 'Succeeded' ? v : undefined;
    });
    assert.equal(goodView.containers.c?.currentState.exitCode, 0);
    assert.equal(goodView.containers.c?.currentState.detailStatus, 'Completed');

    const badView = await waitFor('OnFailure with exit 3 to restart twice', () => {
      const v = runtime.view(onFailureBad.id);
      return (v?.containers.c?.restartCount ?? 0) >= 2 ? v : undefined;
    });
    assert.equal(badView.state, 'Running');
    assert.equal(badView.containers.c?.previousState?.exitCode, 3);
    const started = badView.containers.c?.events.find((e) => e.name === 'Started');
    assert.ok(started && started.count >= 3, 'each start is counted in the Started event');

    const alwaysView = await waitFor('Always with exit 0 to restart twice', () => {
      const v = runtime.view(always.id);
      return (v?.containers.c?.restartCount ?? 0) >= 2 ? v : undefined;
    });
    assert.equal(alwaysView.state, 'Running');
    assert.equal(alwaysView.containers.c?.previousState?.exitCode, 0);

    // Those that must not restart have not, by now (several back-offs later).
    assert.equal(runtime.view(never.id)?.containers.c?.restartCount, 0);
    assert.equal(runtime.view(onFailureGood.id)?.containers.c?.restartCount, 0);
    assert.equal(runtime.view(never.id)?.state, 'Failed');
  });

  it('runs exec with separate streams, stdin and exit code, and with a terminal', { timeout: TIMEOUT }, async (t) => {
    const spec = group('exec', [container('c', ['sleep', '3600'])]);
    await createGroup(t, spec);
    await waitFor('the container to run', () => runtime.view(spec.id)?.containers.c?.currentState.state === 'Running');

    const plain = await collect(
      await runtime.exec(spec.id, 'c', ['sh', '-c', 'echo out; echo err >&2; exit 5'], { cols: 0, rows: 0 }),
    );
    assert.deepEqual(plain, { stdout: 'out\n', stderr: 'err\n', code: 5 });

    const piped = await collect(
      await runtime.exec(spec.id, 'c', ['sh', '-c', 'tr a-z A-Z'], { cols: 0, rows: 0 }),
      'shout\n',
    );
    assert.equal(piped.stdout, 'SHOUT\n');
    assert.equal(piped.code, 0);

    const tty = await runtime.exec(spec.id, 'c', ['sh', '-c', 'stty size; exit 7'], { cols: 100, rows: 40 });
    assert.equal(tty.stderr, undefined);
    const ttyOut = await collect(tty);
    assert.match(ttyOut.stdout, /40 100/);
    assert.equal(ttyOut.code, 7);
  });

  it(
    'runs init containers in order before the app containers, sharing an emptyDir',
    { timeout: TIMEOUT },
    async (t) => {
      const mount = [{ name: 'work', mountPath: '/work', readOnly: false }];
      const spec = group(
        'init',
        [container('app', ['sh', '-c', 'cat /work/order; exec sleep 3600'], { volumeMounts: mount })],
        {
          initContainers: [
            container('first', ['sh', '-c', 'echo first >> /work/order'], { volumeMounts: mount }),
            container('second', ['sh', '-c', 'echo second >> /work/order'], { volumeMounts: mount }),
          ],
          volumes: [{ name: 'work', emptyDir: {} }],
        },
      );
      await createGroup(t, spec);
      const logs = await waitFor(
        'the app to print the init order',
        async () => {
          const l = await runtime.logs(spec.id, 'app', {});
          return l.includes('second') ? l : undefined;
        },
        { timeoutMs: 60_000 },
      );
      assert.equal(logs, 'first\nsecond\n');
      const v = runtime.view(spec.id);
      assert.equal(v?.initContainers.first?.currentState.state, 'Terminated');
      assert.equal(v?.initContainers.first?.currentState.exitCode, 0);
      assert.equal(v?.initContainers.second?.currentState.exitCode, 0);
    },
  );

  it('runs readiness (httpGet) and liveness (exec) probes', { timeout: TIMEOUT }, async (t) => {
    const spec = group(
      'probes',
      [
        container(
          'c',
          [
            'sh',
            '-c',
            'echo ok > /www/index.html; touch /tmp/alive; (sleep 4; rm /tmp/alive) & exec httpd -f -p 9090 -h /www',
          ],
          {
            readinessProbe: { httpGet: { port: 9090, path: '/' }, periodSeconds: 1, failureThreshold: 1 },
            livenessProbe: { exec: { command: ['test', '-f', '/tmp/alive'] }, periodSeconds: 1, failureThreshold: 1 },
          },
        ),
      ],
      { restartPolicy: 'Always' },
    );
    await createGroup(t, spec);
    await waitFor('readiness to pass', () => runtime.view(spec.id)?.containers.c?.ready === true, {
      timeoutMs: 60_000,
    });
    const v = await waitFor(
      'liveness failure to restart the container',
      () => {
        const view = runtime.view(spec.id);
        return (view?.containers.c?.restartCount ?? 0) >= 1 ? view : undefined;
      },
      { timeoutMs: 120_000 },
    );
    assert.ok(v.containers.c?.events.some((e) => e.name === 'Killing'));
  });

  it(
    'fails provisioning of a missing image with InaccessibleImage and leaves no pod',
    { timeout: TIMEOUT },
    async (t) => {
      // A registry on a closed loopback port: the pull fails at once, without leaving the machine.
      const spec = group('noimage', [{ ...container('c', ['true']), image: '127.0.0.1:1/nothing/here:1' }]);
      t.after(() => runtime.remove(spec.id));
      await assert.rejects(
        runtime.create(spec, () => undefined),
        (e: unknown) => {
          assert.ok(e instanceof RuntimeProvisionError);
          assert.equal(e.code, 'InaccessibleImage');
          return true;
        },
      );
      const v = runtime.view(spec.id);
      assert.equal(v?.state, 'Failed');
      assert.ok(v?.containers.c?.events.some((e) => e.name === 'Failed'));
    },
  );

  it(
    "keeps two runtimes on one machine apart, deletes a group's pod, and close() removes only its own",
    { timeout: TIMEOUT },
    async (t) => {
      const web = (text: string) =>
        container('web', ['sh', '-c', `echo ${text} > /www/index.html && exec httpd -f -p 80 -h /www`], {
          ports: [{ port: 80, protocol: 'TCP' }],
        });
      const ipAddress = { type: 'Public' as const, ports: [{ port: 80, protocol: 'TCP' as const }] };
      const spec = group('delete', [web('ours')], { ipAddress });
      await createGroup(t, spec);
      const mine = `aci-emulator.instance=${runtime.instanceId}`;

      // A second runtime (a second emulator) on the same state folder, same port.
      const other = createPodmanRuntime({
        stateDir: podmanTestStateDir(),
        restartBackoff: { initialMs: 200, maxMs: 1000 },
        stopTimeoutSeconds: 2,
      });
      t.after(() => other.close());
      const otherSpec = group('close', [web('theirs')], { ipAddress });
      await other.create(otherSpec, () => undefined);
      const ourIp = runtime.view(spec.id)?.ip;
      const theirIp = other.view(otherSpec.id)?.ip;
      assert.ok(ourIp && theirIp);
      assert.notEqual(ourIp, theirIp);
      const get = (ip: string) => async () => {
        const res = await fetch(`http://${ip}/`, { signal: AbortSignal.timeout(10_000) });
        return res.ok ? res.text() : undefined;
      };
      assert.equal(await waitFor('our group to serve', get(ourIp), { timeoutMs: 60_000 }), 'ours\n');
      assert.equal(await waitFor('their group to serve', get(theirIp), { timeoutMs: 60_000 }), 'theirs\n');

      const theirs = `aci-emulator.instance=${other.instanceId}`;
      assert.equal((await podsOf(theirs)).length, 1);
      const oursBefore = await podsOf(mine);
      assert.equal(oursBefore.length, 1, 'this runtime has exactly the one group left');
      await other.close();
      assert.deepEqual(await podsOf(theirs), []);
      assert.deepEqual(await podsOf(mine), oursBefore);
      assert.equal(await get(ourIp)(), 'ours\n');

      await runtime.remove(spec.id);
      assert.equal(runtime.view(spec.id), undefined);
      assert.deepEqual(await podsOf(mine), []);
      const containersLeft = await runtime.cli.run(['ps', '-a', '-q', '--filter', `label=${mine}`]);
      assert.equal(containersLeft.trim(), '');
      await assert.rejects(fetch(`http://${ourIp}/`, { signal: AbortSignal.timeout(10_000) }));
      await runtime.remove(spec.id); // idempotent
    },
  );
});
