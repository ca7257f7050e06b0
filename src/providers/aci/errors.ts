/** Typed errors raised by the ACI provider at its boundaries. */

/** A required setting is missing or malformed. The CLI prints `message` as one line and exits. */
export class AciConfigError extends Error {
  override readonly name = 'AciConfigError';
  constructor(
    /** The environment variable or option at fault, e.g. 'AZURE_SUBSCRIPTION_ID'. */
    readonly setting: string,
    message: string,
  ) {
    super(message);
  }
}

/** An ARM call failed in a way retrying will not fix (4xx other than 404/409/429). */
export class ArmRequestError extends Error {
  override readonly name = 'ArmRequestError';
  constructor(
    readonly operation: string,
    readonly statusCode: number | undefined,
    /** ARM's error code, e.g. 'InvalidContainerGroupName'. */
    readonly code: string | undefined,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
