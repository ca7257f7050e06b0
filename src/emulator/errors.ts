/** ARM-shaped errors: every failure an ARM handler raises becomes `{"error":{"code","message"}}`. */
export class ArmError extends Error {
  override readonly name = 'ArmError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
    readonly target?: string,
  ) {
    super(message);
  }

  body(): { error: { code: string; message: string; target?: string } } {
    const error: { code: string; message: string; target?: string } = { code: this.code, message: this.message };
    if (this.target !== undefined) error.target = this.target;
    return { error };
  }
}

export const badRequest = (code: string, message: string, target?: string): ArmError =>
  new ArmError(400, code, message, {}, target);

export const notFound = (type: string, name: string, resourceGroup: string): ArmError =>
  new ArmError(
    404,
    'ResourceNotFound',
    `The Resource '${type}/${name}' under resource group '${resourceGroup}' was not found.`,
  );

export const conflict = (code: string, message: string): ArmError => new ArmError(409, code, message);

export const tooManyRequests = (message: string, retryAfterSeconds: number): ArmError =>
  new ArmError(429, 'TooManyRequests', message, { 'Retry-After': String(retryAfterSeconds) });
