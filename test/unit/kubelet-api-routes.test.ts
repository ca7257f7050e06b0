import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BadRequestError, parseRoute } from '../../src/kubelet-api/routes.js';
import { expectedStreamTypes, negotiateProtocol, SPDY_PROTOCOLS } from '../../src/kubelet-api/spdy-server.js';
import { encodeStatus, statusForExit } from '../../src/kubelet-api/status.js';

test('containerLogs: path and every log query parameter the API server sends', () => {
  const r = parseRoute(
    'GET',
    '/containerLogs/ns-1/web/main?tailLines=5&timestamps=true&follow=true&sinceSeconds=30&limitBytes=100&previous=true',
  );
  assert.deepEqual(r, {
    kind: 'containerLogs',
    target: { namespace: 'ns-1', pod: 'web', container: 'main' },
    opts: { tailLines: 5, timestamps: true, follow: true, sinceSeconds: 30, limitBytes: 100, previous: true },
  });
  assert.deepEqual(parseRoute('GET', '/containerLogs/a/b/c'), {
    kind: 'containerLogs',
    target: { namespace: 'a', pod: 'b', container: 'c' },
    opts: {},
  });
  // sinceTime becomes a relative window
  const since = new Date(Date.now() - 120_000).toISOString();
  const r2 = parseRoute('GET', `/containerLogs/a/b/c?sinceTime=${encodeURIComponent(since)}`);
  assert.ok(
    r2?.kind === 'containerLogs' &&
      r2.opts.sinceSeconds !== undefined &&
      r2.opts.sinceSeconds >= 119 &&
      r2.opts.sinceSeconds <= 125,
  );
});

test('bad log parameters are a BadRequestError naming the parameter', () => {
  assert.throws(
    () => parseRoute('GET', '/containerLogs/a/b/c?tailLines=-1'),
    (e: Error) => e instanceof BadRequestError && /tailLines/.test(e.message),
  );
  assert.throws(() => parseRoute('GET', '/containerLogs/a/b/c?limitBytes=0'), /limitBytes/);
  assert.throws(() => parseRoute('GET', '/containerLogs/a/b/c?follow=maybe'), /follow/);
  assert.throws(() => parseRoute('GET', '/containerLogs/a/b/c?sinceTime=yesterday'), /sinceTime/);
  assert.throws(
    () => parseRoute('GET', '/containerLogs/a/b/c?sinceSeconds=5&sinceTime=2020-01-01T00:00:00Z'),
    /at most one/,
  );
});

test('exec: repeated command parameters in order, stream flags, the uid form; tty drops stderr', () => {
  assert.deepEqual(parseRoute('POST', '/exec/ns/p/c?command=sh&command=-c&command=exit%203&input=1&output=1&error=1'), {
    kind: 'exec',
    target: { namespace: 'ns', pod: 'p', container: 'c' },
    command: ['sh', '-c', 'exit 3'],
    stream: { stdin: true, stdout: true, stderr: true, tty: false },
  });
  const withUid = parseRoute('POST', '/exec/ns/p/uid-1/c?command=ls&output=1&tty=1&error=1');
  assert.deepEqual(withUid, {
    kind: 'exec',
    target: { namespace: 'ns', pod: 'p', uid: 'uid-1', container: 'c' },
    command: ['ls'],
    stream: { stdin: false, stdout: true, stderr: false, tty: true },
  });
  assert.throws(() => parseRoute('POST', '/exec/ns/p/c?output=1'), /command/);
  assert.throws(() => parseRoute('POST', '/exec/ns/p/c?command=ls'), /at least one of input, output or error/);
  assert.deepEqual(parseRoute('GET', '/attach/ns/p/c?input=true&output=true'), {
    kind: 'attach',
    target: { namespace: 'ns', pod: 'p', container: 'c' },
    stream: { stdin: true, stdout: true, stderr: false, tty: false },
  });
});

test('other paths: healthz, pods, stats; unknown paths and methods are undefined', () => {
  assert.deepEqual(parseRoute('GET', '/healthz'), { kind: 'healthz' });
  assert.deepEqual(parseRoute('GET', '/pods'), { kind: 'pods' });
  assert.deepEqual(parseRoute('GET', '/stats/summary'), { kind: 'statsSummary' });
  assert.equal(parseRoute('GET', '/metrics/cadvisor'), undefined);
  assert.equal(parseRoute('DELETE', '/healthz'), undefined);
  assert.equal(parseRoute('GET', '/containerLogs/a/b'), undefined);
  assert.equal(parseRoute('PUT', '/exec/a/b/c?command=ls&output=1'), undefined);
});

test('protocol negotiation takes the first offered protocol the server speaks, from repeated or comma-joined headers', () => {
  assert.equal(
    negotiateProtocol('v5.channel.k8s.io, v4.channel.k8s.io, v3.channel.k8s.io', SPDY_PROTOCOLS),
    'v4.channel.k8s.io',
  );
  assert.equal(negotiateProtocol(['v3.channel.k8s.io', 'v4.channel.k8s.io'], SPDY_PROTOCOLS), 'v3.channel.k8s.io');
  assert.equal(negotiateProtocol('channel.k8s.io', SPDY_PROTOCOLS), undefined);
  assert.equal(negotiateProtocol(undefined, SPDY_PROTOCOLS), undefined);
});

test('the streams a remote-command client opens, as the kubelet counts them', () => {
  assert.deepEqual(expectedStreamTypes({ stdin: true, stdout: true, stderr: true, tty: false }, 'v4.channel.k8s.io'), [
    'error',
    'stdin',
    'stdout',
    'stderr',
  ]);
  assert.deepEqual(expectedStreamTypes({ stdin: true, stdout: true, stderr: false, tty: true }, 'v4.channel.k8s.io'), [
    'error',
    'stdin',
    'stdout',
    'resize',
  ]);
  assert.deepEqual(expectedStreamTypes({ stdin: false, stdout: true, stderr: false, tty: true }, 'v2.channel.k8s.io'), [
    'error',
    'stdout',
  ]);
});

test('error-stream status: Success for 0, NonZeroExitCode with an ExitCode cause otherwise; plain text before v4', () => {
  assert.deepEqual(JSON.parse(encodeStatus(statusForExit(0), 'v4.channel.k8s.io')), {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Success',
  });
  const failed = JSON.parse(encodeStatus(statusForExit(3), 'v5.channel.k8s.io')) as {
    status: string;
    reason: string;
    details: { causes: Array<{ reason: string; message: string }> };
  };
  assert.equal(failed.status, 'Failure');
  assert.equal(failed.reason, 'NonZeroExitCode');
  assert.deepEqual(failed.details.causes, [{ reason: 'ExitCode', message: '3' }]);
  // kubectl parses the code as uint8
  assert.equal(
    (JSON.parse(encodeStatus(statusForExit(-1), 'v4.channel.k8s.io')) as typeof failed).details.causes[0]?.message,
    '255',
  );
  assert.equal(encodeStatus(statusForExit(0), 'v3.channel.k8s.io'), '');
  assert.match(encodeStatus(statusForExit(2), 'v3.channel.k8s.io'), /non-zero exit code/);
});

test('portForward: both path forms, the port query repeated or comma-separated (as the API server joins kubectl’s ports)', () => {
  assert.deepEqual(parseRoute('POST', '/portForward/ns/p'), {
    kind: 'portForward',
    target: { namespace: 'ns', pod: 'p' },
    ports: [],
  });
  assert.deepEqual(parseRoute('GET', '/portForward/ns/p/uid-1?port=80,443&port=8080'), {
    kind: 'portForward',
    target: { namespace: 'ns', pod: 'p', uid: 'uid-1' },
    ports: [80, 443, 8080],
  });
  assert.throws(() => parseRoute('GET', '/portForward/ns/p?port=0'), /must be > 0/);
  assert.throws(() => parseRoute('GET', '/portForward/ns/p?port=65536'), /unable to parse/);
  assert.throws(() => parseRoute('GET', '/portForward/ns/p?port='), /cannot be empty/);
  assert.equal(parseRoute('GET', '/portForward/ns'), undefined);
  assert.equal(parseRoute('DELETE', '/portForward/ns/p'), undefined);
});

test('runningpods and spec with and without the trailing slash; reads only', () => {
  for (const path of ['/runningpods/', '/runningpods'])
    assert.deepEqual(parseRoute('GET', path), { kind: 'runningPods' });
  for (const path of ['/spec/', '/spec']) assert.deepEqual(parseRoute('GET', path), { kind: 'spec' });
  assert.equal(parseRoute('POST', '/runningpods/'), undefined);
  assert.equal(parseRoute('GET', '/runningpods/x'), undefined);
});
