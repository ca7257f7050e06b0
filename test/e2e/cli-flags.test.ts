/** The aci-connector binary: --help, --version, and one clear line for bad configuration. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testCluster } from '../support/cluster.js';
import { CONNECTOR_MAIN } from './connector-process.js';

function run(args: string[], env: Record<string, string | undefined> = {}) {
  const r = spawnSync(process.execPath, [CONNECTOR_MAIN, ...args], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, KUBERNETES_SERVICE_HOST: undefined, KUBERNETES_SERVICE_PORT: undefined, ...env },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function oneLine(stderr: string): string {
  const lines = stderr.trim().split('\n');
  assert.equal(lines.length, 1, `exactly one line on stderr, got:\n${stderr}`);
  return lines[0] as string;
}

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

test('--help documents every flag', () => {
  const r = run(['--help']);
  assert.equal(r.code, 0);
  for (const flag of [
    '--kubeconfig',
    '--node-name',
    '--provider',
    '--taint',
    '--kube-api-qps',
    '--kube-api-burst',
    '--workers',
    '--kubelet-port',
    '--log-level',
    '--metrics-port',
    '--leader-elect',
    '--leader-elect-lease-duration',
    '--leader-elect-renew-deadline',
    '--leader-elect-retry-period',
    '--help',
    '--version',
  ]) {
    assert.ok(r.stdout.includes(flag), `--help mentions ${flag}`);
  }
  assert.match(r.stdout, /azure\.com\/aci:NoSchedule/);
});

test('--version prints the package version', () => {
  const r = run(['--version']);
  assert.equal(r.code, 0);
  assert.equal(r.stdout.trim(), pkg.version);
});

test('bad flags and values end with one clear line and a non-zero exit', () => {
  const cases: Array<[string[], RegExp]> = [
    [['--no-such-flag'], /unknown option '--no-such-flag'/],
    [['--workers', 'many'], /--workers.*must be a positive integer/],
    [['--kube-api-qps', '0'], /--kube-api-qps.*must be a positive number/],
    [['--provider', 'gcp'], /--provider.*gcp.*Allowed choices are aci, mock/],
    [['--node-name', 'Bad_Name'], /--node-name.*DNS subdomain/],
    [['--log-level', 'chatty'], /--log-level.*must be one of/],
    [['--kubeconfig'], /--kubeconfig.*argument missing/],
    [['--taint', 'azure.com/aci'], /malformed taint "azure\.com\/aci"/],
    [['--taint', 'x:Sometimes'], /effect must be one of/],
    [['--leader-elect-lease-duration', 'soon'], /--leader-elect-lease-duration.*must be a positive duration/],
    [
      ['--leader-elect', '--leader-elect-renew-deadline', '20s'],
      /--leader-elect: the lease duration must be longer than the renew deadline/,
    ],
    [
      ['--leader-elect', '--leader-elect-retry-period', '10s'],
      /--leader-elect: the renew deadline must be longer than the retry period/,
    ],
    [
      ['--provider', 'mock', '--kubeconfig', '/nonexistent/kubeconfig'],
      /cannot load kubeconfig \/nonexistent\/kubeconfig/,
    ],
  ];
  for (const [args, pattern] of cases) {
    const r = run(args);
    assert.notEqual(r.code, 0, `${args.join(' ')} must fail`);
    assert.match(oneLine(r.stderr), pattern, args.join(' '));
  }
});

test('an unreachable API server at start ends with one clear line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cli-unreachable-'));
  try {
    // Same CA and credentials as the real cluster, but a loopback port where nothing listens.
    const real = readFileSync(testCluster().connectorKubeconfig, 'utf8');
    const file = join(dir, 'kubeconfig');
    writeFileSync(file, real.replace(/server: *https:\/\/127\.0\.0\.1:\d+/, 'server: https://127.0.0.1:1'));
    const r = run(['--provider', 'mock', '--kubeconfig', file, '--metrics-port', '0']);
    assert.notEqual(r.code, 0);
    assert.match(oneLine(r.stderr), /cannot reach the API server at https:\/\/127\.0\.0\.1:1/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
