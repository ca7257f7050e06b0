/** Reading Virtual Kubelet's e2e suite results from `go test -v` output (test/e2e/vk-e2e-results.ts). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { lostGracefulDeleteRace, parseGoTestVerbose, subtestsOf } from '../e2e/vk-e2e-results.js';

const output = `=== RUN   TestEndToEnd
    suite.go:62: True
=== RUN   TestEndToEnd/TestGetPods
    basic.go:40: Created pod: nginx-testgetpods-g9s42
=== RUN   TestEndToEnd/TestGetStatsSummary
    basic.go:101: expected stats for 3 containers, got stats for 0 containers
--- FAIL: TestEndToEnd (11.75s)
    --- PASS: TestEndToEnd/TestGetPods (0.80s)
    --- FAIL: TestEndToEnd/TestGetStatsSummary (0.80s)
        basic.go:101: expected stats for 3 containers, got stats for 0 containers
    --- SKIP: TestEndToEnd/TestGetMetricsResource (0.00s)
        basic.go:1: Skipped due to shouldSkipTest()
FAIL
`;

test('verdicts of every subtest, and the log lines of a failed one', () => {
  const r = parseGoTestVerbose(output);
  assert.equal(r.verdicts.get('TestEndToEnd'), 'FAIL');
  assert.deepEqual(subtestsOf(r, 'TestEndToEnd'), [
    { name: 'TestGetPods', verdict: 'PASS' },
    { name: 'TestGetStatsSummary', verdict: 'FAIL' },
    { name: 'TestGetMetricsResource', verdict: 'SKIP' },
  ]);
  assert.deepEqual(r.failureLogs.get('TestEndToEnd/TestGetStatsSummary'), [
    'basic.go:101: expected stats for 3 containers, got stats for 0 containers',
  ]);
  // The parent's own lines: its log under === RUN; its subtests' verdicts are not logs of its own.
  assert.deepEqual(r.failureLogs.get('TestEndToEnd'), ['suite.go:62: True']);
  assert.equal(r.failureLogs.has('TestEndToEnd/TestGetPods'), false);
});

test('streamed log lines under === RUN belong to the failed test they follow', () => {
  const r = parseGoTestVerbose(`=== RUN   TestEndToEnd/TestGetStatsSummary
    basic.go:94: the server could not find the requested resource
--- FAIL: TestEndToEnd/TestGetStatsSummary (0.80s)
`);
  assert.deepEqual(r.failureLogs.get('TestEndToEnd/TestGetStatsSummary'), [
    'basic.go:94: the server could not find the requested resource',
  ]);
});

test('output without verdicts (a binary that crashed) has none', () => {
  const r = parseGoTestVerbose('panic: runtime error\ngoroutine 1 [running]:\n');
  assert.equal(r.verdicts.size, 0);
  assert.deepEqual(subtestsOf(r, 'TestEndToEnd'), []);
});

test("the graceful-delete race is recognised only as that test's lone failure at basic.go:256", () => {
  // As CI printed it once (the suite's gotest.tools cannot read its own source, hence the message).
  const raced = `=== RUN   TestEndToEnd/TestPodLifecycleGracefulDelete
    basic.go:204: Created pod: nginx-testpodlifecyclegracefuldelete-87224
    basic.go:210: Pod nginx-testpodlifecyclegracefuldelete-87224 ready
    basic.go:237: Deleted pod: nginx-testpodlifecyclegracefuldelete-87224
    basic.go:256: failed to parse source file: basic.go: no such file or directory
--- FAIL: TestEndToEnd/TestPodLifecycleGracefulDelete (1.20s)
`;
  const r = parseGoTestVerbose(raced);
  const failed = subtestsOf(r, 'TestEndToEnd').filter((s) => s.verdict !== 'PASS');
  assert.equal(lostGracefulDeleteRace(r, 'TestEndToEnd', failed), true);
  // Another assertion of the same test (the provider still lists the pod) is the node's fault.
  const stillThere = parseGoTestVerbose(raced.replace('basic.go:256:', 'basic.go:251:'));
  assert.equal(lostGracefulDeleteRace(stillThere, 'TestEndToEnd', failed), false);
  // Not alone: no rerun.
  assert.equal(lostGracefulDeleteRace(r, 'TestEndToEnd', [...failed, { name: 'TestGetPods' }]), false);
});
