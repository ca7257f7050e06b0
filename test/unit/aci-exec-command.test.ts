/**
 * The exec line the ACI provider types into /bin/sh, run by real POSIX shells
 * (Debian's dash and busybox ash, the shell of most small images): every argument
 * must arrive byte for byte.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { MAX_SHELL_LINE, planExec, quotePosix } from '../../src/providers/aci/streams/exec-command.js';

const shells = [['/bin/sh'], ['/bin/busybox', 'sh']].filter(([bin]) => existsSync(bin ?? ''));

function runLine(shell: string[], line: string): { stdout: Buffer; status: number | null } {
  const r = spawnSync(shell[0] ?? '', shell.slice(1), { input: line });
  return { stdout: r.stdout, status: r.status };
}

test('both shells are there to check against', () => {
  assert.equal(shells.length, 2, 'dash (/bin/sh) and busybox-static are installed by scripts/lib.sh');
});

test('a single word is sent as it is; anything else goes through /bin/sh', () => {
  assert.deepEqual(planExec(['env'], false), { kind: 'direct', command: 'env' });
  assert.deepEqual(planExec(['/usr/bin/env'], true), { kind: 'direct', command: '/usr/bin/env' });
  // ACI may split a string with spaces: a single argument with one is typed into the shell.
  assert.equal(planExec(['/opt/my app/run'], false).kind, 'shell');
  assert.equal(planExec(['echo', 'hi'], false).kind, 'shell');
  assert.equal(planExec([], false).kind, 'refused');
});

test('the typed line runs the exact argv in real shells, with the sentinel right before it', () => {
  const args = [
    "it's",
    '100%',
    'back\\slash',
    '',
    'tab\there',
    'two\nlines',
    'grüße',
    '$HOME',
    '*',
    '"dq"',
    '-n',
    '\\036',
    ' lead',
    "''",
  ];
  for (const tty of [false, true]) {
    const plan = planExec(['printf', '[%s]', ...args], tty, 'abc123');
    assert.equal(plan.kind, 'shell');
    if (plan.kind !== 'shell') continue;
    assert.equal(plan.command, '/bin/sh');
    assert.match(plan.line, /^[\x20-\x7e]*\n$/, 'printable ASCII only, one line');
    assert.ok(!plan.line.includes(plan.sentinel.toString('latin1')), 'the echoed line never contains the sentinel');
    for (const shell of shells) {
      const r = runLine(shell, plan.line);
      assert.equal(r.status, 0, shell.join(' '));
      assert.deepEqual(
        r.stdout,
        Buffer.concat([plan.sentinel, Buffer.from(args.map((a) => `[${a}]`).join(''))]),
        shell.join(' '),
      );
    }
  }
});

test('the shell ends with the command: its exit code, or 127 when it is not found', () => {
  for (const shell of shells) {
    const exit = planExec(['sh', '-c', 'exit 7'], false);
    assert.equal(exit.kind === 'shell' && runLine(shell, exit.line).status, 7);
    const missing = planExec(['no-such-program', 'x'], false);
    assert.equal(missing.kind === 'shell' && runLine(shell, missing.line).status, 127);
  }
});

test('quotePosix', () => {
  assert.equal(quotePosix("a'b"), `'a'\\''b'`);
  assert.equal(quotePosix(''), "''");
});

test('a command too long for a line editor is refused, saying why', () => {
  const plan = planExec(['echo', 'x'.repeat(MAX_SHELL_LINE)], false);
  assert.equal(plan.kind, 'refused');
  assert.match(plan.kind === 'refused' ? plan.message : '', /too long.*one executable without arguments/);
});
