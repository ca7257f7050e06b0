/** The standalone CLI: --help, and a start that prints what clients need and answers on its endpoint. */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { it } from 'node:test';

const cli = fileURLToPath(new URL('../../src/emulator/cli.js', import.meta.url));

it('documents its flags with --help', async () => {
  const out = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, [cli, '--help'], (err: Error | null, stdout) => (err ? reject(err) : resolve(stdout))),
  );
  for (const flag of [
    '--port',
    '--host',
    '--runtime',
    '--state-dir',
    '--read-limit',
    '--write-limit',
    '--creation-limit',
    '--quota-groups',
    '--fault-500',
    '--fault-503',
    '--latency',
    '--lost-put-rate',
    '--exec-split-command',
  ]) {
    assert.ok(out.includes(flag), `--help mentions ${flag}`);
  }
});

it(
  'starts, prints endpoint, tenant, credentials and CA path, serves OpenID metadata, and stops on SIGTERM',
  { timeout: 60_000 },
  async () => {
    const stateDir = await mkdtemp(path.join(os.tmpdir(), 'aci-emulator-cli-'));
    const child = spawn(
      process.execPath,
      [cli, '--port', '0', '--state-dir', stateDir, '--tenant-id', '33333333-3333-4333-8333-333333333333'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    try {
      let out = '';
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('CA certificate:')) resolve();
        });
        child.once('exit', (code) => reject(new Error(`exited ${code}: ${out}`)));
      });
      const field = (label: string): string => new RegExp(`${label}:\\s+(\\S+)`).exec(out)?.[1] ?? '';
      const endpoint = field('endpoint \\(ARM\\)');
      assert.match(endpoint, /^https:\/\/127\.0\.0\.1:\d+$/);
      assert.equal(field('tenant id'), '33333333-3333-4333-8333-333333333333');
      assert.ok(field('client id'));
      assert.ok(field('client secret'));
      const caPath = field('CA certificate');
      assert.equal(caPath, path.join(stateDir, 'ca.pem'));
      const ca = await readFile(caPath, 'utf8');
      const status = await new Promise<number>((resolve, reject) => {
        https
          .get(
            `${endpoint}/33333333-3333-4333-8333-333333333333/v2.0/.well-known/openid-configuration`,
            { ca },
            (res) => {
              res.resume();
              resolve(res.statusCode ?? 0);
            },
          )
          .on('error', reject);
      });
      assert.equal(status, 200);
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await rm(stateDir, { recursive: true, force: true });
    }
  },
);
