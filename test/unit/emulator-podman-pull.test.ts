/** Which images the emulator's podman runtime pulls every time (loopback registries) and how. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loopbackRegistryOf, registryOf } from '../../src/emulator/runtimes/podman/pull.js';

test('loopback registries with a port are recognised; local images and remote registries are not', () => {
  assert.equal(loopbackRegistryOf('127.0.0.1:5000/team/app:v1'), '127.0.0.1:5000');
  assert.equal(loopbackRegistryOf('127.9.8.7:80/app'), '127.9.8.7:80');
  assert.equal(loopbackRegistryOf('localhost:5000/app'), 'localhost:5000');
  assert.equal(loopbackRegistryOf('[::1]:5000/app'), '[::1]:5000');
  // podman's own local names: no registry behind them.
  assert.equal(loopbackRegistryOf('localhost/aci-local/busybox:abc'), undefined);
  assert.equal(loopbackRegistryOf('busybox'), undefined);
  assert.equal(loopbackRegistryOf('docker.io/library/nginx'), undefined);
  assert.equal(loopbackRegistryOf('10.0.0.1:5000/app'), undefined);
  assert.equal(loopbackRegistryOf('127.0.0.1.example.com:5000/app'), undefined);
});

test('the registry a name pulls from, which picks its credentials', () => {
  assert.equal(registryOf('nginx'), 'docker.io');
  assert.equal(registryOf('bitnami/redis'), 'docker.io');
  assert.equal(registryOf('MyReg.azurecr.io/app:1'), 'myreg.azurecr.io');
  assert.equal(registryOf('127.0.0.1:5000/app'), '127.0.0.1:5000');
  assert.equal(registryOf('localhost/aci-local/busybox:x'), 'localhost');
});
