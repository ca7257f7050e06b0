/**
 * Reads the verdicts of a Go test binary's `-test.v` output: the `--- PASS/FAIL/SKIP: NAME (TIME)`
 * lines `go test` prints for each test and subtest (indented by depth), and the log lines printed
 * under a failed one, so a failure is reported with the suite's own words.
 */
export type Verdict = 'PASS' | 'FAIL' | 'SKIP';

export interface GoTestResult {
  /** Full names (Parent/Child) in the order their verdicts were printed. */
  verdicts: Map<string, Verdict>;
  /** The lines printed under each failed test's verdict (its t.Log/t.Fatal output). */
  failureLogs: Map<string, string[]>;
}

const VERDICT = /^(\s*)--- (PASS|FAIL|SKIP): (\S+) \([\d.]+s\)$/;
const EVENT = /^=== (?:RUN|CONT|PAUSE|NAME)\s+(\S+)$/;

export function parseGoTestVerbose(output: string): GoTestResult {
  const verdicts = new Map<string, Verdict>();
  const logs = new Map<string, string[]>();
  const add = (name: string, line: string) => {
    const list = logs.get(name) ?? [];
    list.push(line.trim());
    logs.set(name, list);
  };
  // Log lines are printed under `=== RUN NAME` as they happen (streamed -v output), and again
  // under `--- FAIL: NAME` when a test's output is held back; each goes to the test it follows.
  let current: { name: string; indent: number } | undefined;
  for (const line of output.split('\n')) {
    const v = VERDICT.exec(line);
    if (v) {
      const [, indent = '', verdict, name = ''] = v;
      verdicts.set(name, verdict as Verdict);
      current = { name, indent: indent.length };
      continue;
    }
    const e = EVENT.exec(line);
    if (e) {
      current = { name: e[1] ?? '', indent: 0 };
      continue;
    }
    // A test's log lines are indented deeper than its verdict line.
    if (current && line.startsWith(' '.repeat(current.indent + 4)) && line.trim() !== '') add(current.name, line);
    else current = undefined;
  }
  const failureLogs = new Map<string, string[]>();
  for (const [name, verdict] of verdicts) {
    if (verdict === 'FAIL') failureLogs.set(name, [...new Set(logs.get(name) ?? [])]);
  }
  return { verdicts, failureLogs };
}

/** The subtests of one parent test, with their verdicts. */
export function subtestsOf(result: GoTestResult, parent: string): { name: string; verdict: Verdict }[] {
  const prefix = `${parent}/`;
  return [...result.verdicts]
    .filter(([name]) => name.startsWith(prefix) && !name.slice(prefix.length).includes('/'))
    .map(([name, verdict]) => ({ name: name.slice(prefix.length), verdict }));
}

export const GRACEFUL = 'TestPodLifecycleGracefulDelete';

/**
 * TestPodLifecycleGracefulDelete starts its watch for the deletion in a goroutine and deletes the pod
 * at once, then asserts that the first event it saw with a deletionTimestamp had a grace period above 0
 * (basic.go:256). A node that finishes the deletion as a kubelet does (the grace-0 DELETE as soon as
 * the containers are gone; Virtual Kubelet's own controller waits out the whole grace period) wins
 * that race now and then on a loaded machine: the watch's first list then sees the object with the
 * grace period already shortened to 0. True only for that failure, alone (docs/decisions.md).
 */
export function lostGracefulDeleteRace(result: GoTestResult, parent: string, failed: { name: string }[]): boolean {
  if (failed.length !== 1 || failed[0]?.name !== GRACEFUL) return false;
  const logs = result.failureLogs.get(`${parent}/${GRACEFUL}`) ?? [];
  return logs.some((l) => l.startsWith('basic.go:237: Deleted pod')) && logs.some((l) => l.startsWith('basic.go:256:'));
}
