/** containers: logs, exec and attach. Exec and attach hand out a one-time WebSocket ticket. */
import { randomBytes, randomUUID } from 'node:crypto';
import type { ArmContext, ArmRequest, ArmResponse, ExecSessionTicket } from '../context.js';
import { ArmError, badRequest, conflict } from '../errors.js';
import { describeIssue, execRequestSchema } from '../schema.js';
import type { GroupRecord } from '../store.js';
import { requireGroup } from './container-groups.js';

function requireContainer(record: GroupRecord, name: string): void {
  const p = record.input.properties;
  const known = [...p.containers, ...(p.initContainers ?? [])].some((c) => c.name === name);
  if (!known) {
    throw new ArmError(
      404,
      'ContainerNotFound',
      `The container '${name}' could not be found in container group '${record.name}'.`,
    );
  }
}

function requireRunning(ctx: ArmContext, record: GroupRecord, container: string): void {
  const view = ctx.runtime.view(record.key);
  const state = view?.containers[container]?.currentState.state ?? view?.initContainers[container]?.currentState.state;
  if (record.stopped || state !== 'Running') {
    throw conflict(
      'ContainerNotRunning',
      `The container '${container}' in container group '${record.name}' is not running.`,
    );
  }
}

export async function listLogs(ctx: ArmContext, req: ArmRequest): Promise<ArmResponse> {
  const record = requireGroup(ctx, req);
  const container = req.params.containerName ?? '';
  requireContainer(record, container);
  const tailText = req.query.get('tail');
  let tail: number | undefined;
  if (tailText !== null) {
    tail = Number(tailText);
    if (!Number.isInteger(tail) || tail < 0)
      throw badRequest('InvalidTail', `The tail value '${tailText}' must be a non-negative integer.`);
  }
  const tsText = req.query.get('timestamps');
  if (tsText !== null && tsText !== 'true' && tsText !== 'false') {
    throw badRequest('InvalidTimestamps', `The timestamps value '${tsText}' must be 'true' or 'false'.`);
  }
  if (!ctx.runtime.view(record.key)) return { status: 200, body: { content: '' } };
  const opts: { tail?: number; timestamps?: boolean } = { timestamps: tsText === 'true' };
  if (tail !== undefined) opts.tail = tail;
  const content = await ctx.runtime.logs(record.key, container, opts);
  return { status: 200, body: { content } };
}

/**
 * ACI takes the command as one string and runs it as one executable without arguments
 * (Microsoft: "you can't pass command arguments"): `echo hi` is a program named `echo hi`,
 * which is not found. With `split` (an opt-in extension) the string is split on
 * whitespace, and a JSON array of strings gives an exact argv.
 */
export function parseExecCommand(command: string, split = false): string[] {
  if (!split) return command.trim() === '' ? [] : [command];
  const trimmed = command.trim();
  if (trimmed.startsWith('[')) {
    try {
      const argv: unknown = JSON.parse(trimmed);
      if (Array.isArray(argv) && argv.length > 0 && argv.every((a) => typeof a === 'string')) return argv;
    } catch {
      // not JSON: fall through to splitting
    }
  }
  return trimmed.split(/\s+/).filter(Boolean);
}

function issueTicket(
  ctx: ArmContext,
  ticket: Omit<ExecSessionTicket, 'id' | 'password' | 'expiresAt'>,
): ExecSessionTicket {
  const full: ExecSessionTicket = {
    ...ticket,
    id: randomUUID(),
    password: randomBytes(24).toString('base64url'),
    expiresAt: Date.now() + ctx.execTicketTtlMs,
  };
  ctx.tickets.set(full.id, full);
  const timer = setTimeout(() => ctx.tickets.delete(full.id), ctx.execTicketTtlMs);
  timer.unref();
  return full;
}

const wsOrigin = (origin: string): string => origin.replace(/^https:/, 'wss:').replace(/^http:/, 'ws:');

export async function executeCommand(ctx: ArmContext, req: ArmRequest): Promise<ArmResponse> {
  const record = requireGroup(ctx, req);
  const container = req.params.containerName ?? '';
  requireContainer(record, container);
  const parsed = execRequestSchema.safeParse(req.body);
  if (!parsed.success) {
    const issue = describeIssue(parsed.error);
    throw badRequest('InvalidRequestContent', issue.message, issue.path);
  }
  const command = parseExecCommand(parsed.data.command ?? '', ctx.execSplitsCommand);
  if (command.length === 0) throw badRequest('InvalidExecCommand', 'The exec command must not be empty.');
  requireRunning(ctx, record, container);
  const ticket = issueTicket(ctx, {
    kind: 'exec',
    groupKey: record.key,
    container,
    command,
    terminal: { cols: parsed.data.terminalSize?.cols ?? 80, rows: parsed.data.terminalSize?.rows ?? 24 },
  });
  return {
    status: 200,
    body: { webSocketUri: `${wsOrigin(req.origin)}/containerExec/${ticket.id}`, password: ticket.password },
  };
}

export async function attach(ctx: ArmContext, req: ArmRequest): Promise<ArmResponse> {
  const record = requireGroup(ctx, req);
  const container = req.params.containerName ?? '';
  requireContainer(record, container);
  if (!ctx.runtime.view(record.key)) {
    throw conflict(
      'ContainerNotRunning',
      `The container '${container}' in container group '${record.name}' has not started yet.`,
    );
  }
  const ticket = issueTicket(ctx, {
    kind: 'attach',
    groupKey: record.key,
    container,
    command: [],
    terminal: { cols: 80, rows: 24 },
  });
  return {
    status: 200,
    body: { webSocketUri: `${wsOrigin(req.origin)}/containerAttach/${ticket.id}`, password: ticket.password },
  };
}
