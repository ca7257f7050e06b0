/**
 * The podman runtime's preflight: before the emulator accepts a single group, it
 * creates a pod and runs the local image in it, exactly as a group would. A machine
 * that lacks a binary podman needs (the pause image's catatonit, slirp4netns, runc,
 * conmon …) then fails at start with one line that names the Debian package, instead
 * of leaving every group waiting.
 */
import { randomUUID } from 'node:crypto';
import type { PodmanCli } from './podman-cli.js';
import { errorMessage } from '../../../common/errors.js';

export class PodmanPreflightError extends Error {
  override readonly name = 'PodmanPreflightError';
  constructor(
    /** What was being tried: 'podman', 'pod create', 'run the local image'. */
    readonly step: string,
    /** podman's own words, one line. */
    readonly detail: string,
    /** The Debian package or setting that fixes it. */
    readonly fix: string,
  ) {
    super(`podman runtime preflight failed at '${step}': ${detail} (fix: ${fix})`);
  }
}

/** Known causes, by what podman prints: the first that matches names the fix. */
const DIAGNOSES: { match: RegExp; fix: string }[] = [
  {
    match: /catatonit|pause binary/i,
    fix: 'apt-get install catatonit (podman builds its pause image with it; podman only recommends the package)',
  },
  { match: /slirp4netns/i, fix: "apt-get install slirp4netns (the pods' network; podman only recommends it)" },
  { match: /newuidmap|newgidmap/i, fix: 'apt-get install uidmap' },
  { match: /conmon/i, fix: 'apt-get install conmon' },
  { match: /netavark|aardvark/i, fix: 'apt-get install netavark' },
  {
    match: /runc|OCI runtime.*(not found|no such file)/i,
    fix: 'apt-get install runc (crun fails on hybrid cgroups; the emulator uses runc)',
  },
  { match: /podman is not installed/i, fix: 'apt-get install podman' },
  { match: /busybox/i, fix: 'apt-get install busybox-static' },
  {
    match: /rlimit|ulimit/i,
    fix: "lower default_ulimits in the emulator's containers.conf to the machine's hard limits",
  },
];

export function diagnose(text: string): string {
  return (
    DIAGNOSES.find((d) => d.match.test(text))?.fix ??
    "see podman's message; run `scripts/test` once to install every package the project names"
  );
}

/** The last meaningful line of podman's stderr, without its "Error: " prefix. */
function lastLine(stderr: string, fallback: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return (lines[lines.length - 1] ?? fallback).replace(/^Error:\s*/, '');
}

export interface PreflightOptions {
  /** The local image to run (already in the store). */
  image: string;
  /** Labels the preflight's pod so a crash mid-way leaves something findable. */
  label: string;
  /** Bound on every podman call. Default 60 s (the first pause-image build is the slowest part). */
  timeoutMs?: number;
}

/**
 * Creates a pod on the network groups use, runs `image` in it and removes both.
 * Resolves with the time it took; rejects with PodmanPreflightError.
 */
export async function preflightPodman(cli: PodmanCli, opts: PreflightOptions): Promise<number> {
  const started = Date.now();
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const pod = `aci-preflight-${randomUUID().slice(0, 8)}`;
  const step = async (name: string, args: string[]): Promise<string> => {
    let r;
    try {
      r = await cli.exec(args, { timeoutMs });
    } catch (e) {
      const message = errorMessage(e);
      throw new PodmanPreflightError(name, message, diagnose(message));
    }
    if (r.code !== 0) {
      const detail = lastLine(r.stderr, `exit ${r.code}`);
      throw new PodmanPreflightError(name, detail, diagnose(r.stderr));
    }
    return r.stdout;
  };
  try {
    await step('podman', ['version', '--format', '{{.Client.Version}}']);
    await step('pod create', [
      'pod',
      'create',
      '--name',
      pod,
      '--label',
      opts.label,
      '--network',
      'slirp4netns:port_handler=slirp4netns',
    ]);
    await step('pod start', ['pod', 'start', pod]);
    const out = await step('run the local image', [
      'run',
      '--rm',
      '--pod',
      pod,
      '--label',
      opts.label,
      opts.image,
      'echo',
      'preflight-ok',
    ]);
    if (!out.includes('preflight-ok')) {
      throw new PodmanPreflightError(
        'run the local image',
        `the container printed ${JSON.stringify(out.trim().slice(0, 200))}, not preflight-ok`,
        diagnose(out),
      );
    }
  } finally {
    await cli.exec(['pod', 'rm', '--force', '--ignore', '-t', '0', pod], { timeoutMs }).catch(() => undefined);
  }
  return Date.now() - started;
}
