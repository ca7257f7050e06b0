/**
 * The namespace side of a front (netns.ts): run inside a network namespace by
 * `ip netns exec`, it accepts TCP on ADDRESS:PORT and relays each connection,
 * bytes unchanged (TLS passes through), to a unix socket that the process which
 * made the namespace serves from the root namespace.
 * Usage: node netns-front.js ADDRESS PORT SOCKET
 */
import { createConnection, createServer } from 'node:net';

const [address, portText, socketPath] = process.argv.slice(2);
const port = Number(portText);
if (!address || !socketPath || !Number.isInteger(port) || port < 1 || port > 65535) {
  process.stderr.write('usage: netns-front ADDRESS PORT SOCKET\n');
  process.exit(2);
}

const server = createServer((inbound) => {
  const outbound = createConnection({ path: socketPath });
  inbound.pipe(outbound).pipe(inbound);
  inbound.once('error', () => outbound.destroy());
  outbound.once('error', () => inbound.destroy());
});
server.once('error', (err) => {
  process.stderr.write(`netns-front: ${err.message}\n`);
  process.exit(1);
});
server.listen(port, address, () => process.stdout.write(`netns-front: ${address}:${port} -> ${socketPath}\n`));
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => process.exit(0));
