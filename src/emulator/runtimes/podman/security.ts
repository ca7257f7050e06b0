/**
 * ACI's container securityContext as `podman create` flags: capabilities, the user and
 * group, no-new-privileges and a seccomp profile. Kept apart from podman-runtime.ts so the
 * mapping can be read (and unit-tested) on its own.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RuntimeSecurity } from '../../runtime.js';
import type { PodmanCli } from './podman-cli.js';

/** podman takes capability names with or without CAP_; ALL stays ALL. */
const capName = (c: string): string => (c === 'ALL' || c.startsWith('CAP_') ? c : `CAP_${c}`);

/**
 * The flags for one container. `profileDir` is a private folder of the group where a seccomp
 * profile is written (podman reads it from a file). A group without a user keeps the image's
 * USER: only runAsGroup set means the image's user with that group, as containerd does.
 */
export async function securityFlags(
  cli: PodmanCli,
  image: string,
  ctrName: string,
  sec: RuntimeSecurity | undefined,
  profileDir: string,
): Promise<string[]> {
  if (!sec) return [];
  const args: string[] = [];
  // Drops first: `drop ALL, add NET_BIND_SERVICE` keeps the one added, as in a kubelet.
  for (const c of sec.capabilities?.drop ?? []) args.push('--cap-drop', capName(c));
  for (const c of sec.capabilities?.add ?? []) args.push('--cap-add', capName(c));
  if (sec.runAsUser !== undefined || sec.runAsGroup !== undefined) {
    let user = sec.runAsUser !== undefined ? String(sec.runAsUser) : '';
    if (!user) {
      const configured = (await cli.run(['image', 'inspect', '--format', '{{.Config.User}}', image])).trim();
      user = configured.split(':')[0] || '0';
    }
    args.push('--user', sec.runAsGroup !== undefined ? `${user}:${sec.runAsGroup}` : user);
  }
  if (sec.allowPrivilegeEscalation === false) args.push('--security-opt', 'no-new-privileges');
  if (sec.seccompProfile !== undefined) {
    mkdirSync(profileDir, { recursive: true, mode: 0o700 });
    const file = join(profileDir, `${ctrName}.seccomp.json`);
    writeFileSync(file, sec.seccompProfile, { mode: 0o600 });
    args.push('--security-opt', `seccomp=${file}`);
  }
  return args;
}
