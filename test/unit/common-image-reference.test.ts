import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  assertValidImageReference,
  imageReferenceProblem,
  InvalidImageReferenceError,
} from '../../src/common/image-reference.js';

test('references that distribution/reference accepts', () => {
  for (const image of [
    'nginx',
    'nginx:1.27-alpine',
    'library/nginx',
    'docker.io/library/nginx:latest',
    'mcr.microsoft.com/azuredocs/aci-helloworld:latest',
    'localhost:5000/team/app:v1.0',
    '127.0.0.1:5000/app',
    '[::1]:5000/app:tag',
    'Registry.Example/app', // a domain may be uppercase
    'a__b/c-d--e.f_g',
    `app@sha256:${'a'.repeat(64)}`,
    `app:tag@sha256:${'0'.repeat(64)}`,
    `app:${'t'.repeat(128)}`,
  ]) {
    assert.equal(imageReferenceProblem(image), undefined, image);
  }
});

test('references a kubelet refuses, with distribution/reference’s words', () => {
  const cases: [string, RegExp][] = [
    ['registry.example/my app:1', /^invalid reference format$/],
    ['BUSYBOX', /repository name must be lowercase/],
    ['docker.io/Library/nginx', /repository name must be lowercase/],
    ['app@sha256:abc', /^invalid reference format$/],
    [`app@sha256:${'a'.repeat(63)}0a`, /invalid checksum digest length/],
    [`app@sha256:${'A'.repeat(64)}`, /invalid checksum digest format/],
    [`app@md5:${'a'.repeat(32)}`, /unsupported digest algorithm/],
    ['app:', /^invalid reference format$/],
    ['app:-tag', /^invalid reference format$/],
    [`app:${'t'.repeat(129)}`, /^invalid reference format$/],
    ['-app', /^invalid reference format$/],
    ['app/', /^invalid reference format$/],
    ['a'.repeat(64), /cannot specify 64-byte hexadecimal strings/],
    [`r.example/${'a'.repeat(250)}`, /must not be more than 255 characters/],
    ['', /at least one component/],
  ];
  for (const [image, want] of cases) assert.match(imageReferenceProblem(image) ?? 'accepted', want, image);
});

test('the error reads as the kubelet’s message', () => {
  assert.throws(
    () => assertValidImageReference('BUSYBOX'),
    (e: unknown) =>
      e instanceof InvalidImageReferenceError &&
      e.message ===
        'Failed to apply default image tag "BUSYBOX": couldn\'t parse image reference "BUSYBOX": invalid reference format: repository name must be lowercase',
  );
});
