import { test } from 'node:test';
import assert from 'node:assert/strict';
import { delta, digest, parseRequestTotals, toCounts } from '../../bench/lib/prom.js';

const before = `# HELP apiserver_request_total [STABLE] Counter of apiserver requests
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="status",verb="PATCH",version="v1"} 10
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 5
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="events",scope="resource",subresource="",verb="POST",version="v1"} 2
apiserver_request_total_other{code="200",resource="pods",verb="GET"} 99
apiserver_request_duration_seconds_bucket{le="0.1",verb="GET"} 7
`;
const after = `apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="status",verb="PATCH",version="v1"} 110
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 5
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="events",scope="resource",subresource="",verb="POST",version="v1"} 55
apiserver_request_total{code="200",component="apiserver",dry_run="",group="events.k8s.io",resource="events",scope="resource",subresource="",verb="PATCH",version="v1"} 3
apiserver_request_total{code="404",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="DELETE",version="v1"} 7
apiserver_request_total{code="409",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="status",verb="PUT",version="v1"} 2
apiserver_request_total{code="409",component="apiserver",dry_run="",group="apps",resource="deployments",scope="resource",subresource="status",verb="PUT",version="v1"} 4
apiserver_request_total{code="0",component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="WATCH",version="v1"} 1
`;

test('parseRequestTotals reads only apiserver_request_total samples with their labels', () => {
  const s = parseRequestTotals(before);
  assert.equal(s.length, 3);
  assert.deepEqual(s[0], { verb: 'PATCH', resource: 'pods', subresource: 'status', code: '200', value: 10 });
});

test('delta keeps what grew, keyed by verb, resource/subresource and code, largest first', () => {
  const d = delta(toCounts(parseRequestTotals(before)), toCounts(parseRequestTotals(after)));
  assert.deepEqual(
    [...d.entries()],
    [
      ['PATCH pods/status 200', 100],
      ['POST events 201', 53],
      ['DELETE pods 404', 7],
      ['PUT deployments/status 409', 4],
      ['PATCH events 200', 3],
      ['PUT pods/status 409', 2],
      ['WATCH pods 0', 1],
    ],
  );
});

test('digest counts status writes, event writes, and 404s and 409s on pods and events only', () => {
  const g = digest(delta(toCounts(parseRequestTotals(before)), toCounts(parseRequestTotals(after))));
  assert.equal(g.total, 170);
  assert.equal(g.podStatusWrites, 102);
  assert.equal(g.events, 56);
  assert.equal(g.notFound, 7);
  assert.equal(g.conflicts, 2);
  assert.equal(g.byVerbResource['PATCH pods/status'], 100);
  assert.equal(g.byVerbResource['PUT pods/status'], 2);
});

test('label values with escaped quotes and commas parse', () => {
  const s = parseRequestTotals('apiserver_request_total{code="200",resource="a\\"b,c",verb="GET"} 4 1700000000000');
  assert.equal(s[0]?.resource, 'a"b,c');
  assert.equal(s[0]?.value, 4);
});
