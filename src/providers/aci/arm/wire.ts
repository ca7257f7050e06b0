/**
 * The SDK's flattened ContainerGroup → ARM's wire JSON (properties nested), for the
 * PUT we send ourselves. We bypass the SDK's begin/poll LRO helper so a creation is
 * exactly one PUT (its poller would add a GET per create against the read budget).
 */
import type { Container, ContainerGroup, InitContainerDefinition } from '@azure/arm-containerinstance';

function containerToWire(c: Container): unknown {
  const { name, instanceView: _iv, ...properties } = c;
  return { name, properties };
}

function initToWire(c: InitContainerDefinition): unknown {
  const { name, instanceView: _iv, ...properties } = c;
  return { name, properties };
}

export function groupToWire(g: ContainerGroup): Record<string, unknown> {
  const {
    id: _id,
    name: _name,
    type: _type,
    location,
    tags,
    zones,
    identity,
    provisioningState: _ps,
    instanceView: _iv,
    containers,
    initContainers,
    ...rest
  } = g;
  const properties: Record<string, unknown> = { ...rest, containers: containers.map(containerToWire) };
  if (initContainers) properties['initContainers'] = initContainers.map(initToWire);
  return {
    location,
    ...(tags ? { tags } : {}),
    ...(zones ? { zones } : {}),
    ...(identity ? { identity } : {}),
    properties,
  };
}
