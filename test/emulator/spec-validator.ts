/**
 * Validates requests and responses against Microsoft's swagger 2.0 spec for
 * Microsoft.ContainerInstance 2023-05-01 with ajv. Swagger schemas are draft-04-ish:
 * `#/definitions/...` refs are resolved inside one schema document; `x-ms-*` extensions are
 * ignored; formats int32/int64/double/float are checked as numbers. To make "validates"
 * mean something for responses, every object schema that lists its properties rejects
 * properties the spec does not declare (`unevaluatedProperties: false`, which sees through
 * allOf — except on the allOf members themselves, which only see their own part).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import Ajv2019Module from 'ajv/dist/2019.js';
import addFormatsModule from 'ajv-formats';
import type { ErrorObject, ValidateFunction } from 'ajv';

const Ajv2019 = Ajv2019Module.default;
const addFormats = addFormatsModule.default;

/** The spec sits beside the checkout (../shared/aci-spec); ACI_SPEC_DIR overrides. From dist/test/emulator/ that is four levels up. */
export const SPEC_DIR =
  process.env.ACI_SPEC_DIR ?? fileURLToPath(new URL('../../../../shared/aci-spec/2023-05-01', import.meta.url));
const SPEC_ID = 'https://aci.spec/containerInstance.json';

type Json = Record<string, unknown>;

interface SwaggerParameter {
  name: string;
  in: string;
  required?: boolean;
  schema?: Json;
  $ref?: string;
}

interface SwaggerOperation {
  operationId: string;
  parameters?: SwaggerParameter[];
  responses: Record<string, { schema?: Json }>;
}

export interface SpecOperation {
  operationId: string;
  method: string;
  template: string;
  pattern: RegExp;
  op: SwaggerOperation;
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Adds unevaluatedProperties:false to closed object schemas, skipping allOf members. */
function tighten(node: unknown, skip: boolean): unknown {
  if (Array.isArray(node)) return node.map((n) => tighten(n, false));
  if (!isObject(node)) return node;
  const out: Json = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === 'properties' && isObject(v)) {
      out[k] = Object.fromEntries(Object.entries(v).map(([pk, pv]) => [pk, tighten(pv, false)]));
    } else if (k === 'additionalProperties' || k === 'items' || k === 'allOf') {
      out[k] = tighten(v, false);
    } else {
      out[k] = v;
    }
  }
  if (!skip && (isObject(node.properties) || Array.isArray(node.allOf)) && node.additionalProperties === undefined)
    out.unevaluatedProperties = false;
  return out;
}

export class SpecValidator {
  readonly spec: Json & {
    paths: Record<string, Record<string, SwaggerOperation>>;
    definitions: Json;
    parameters: Record<string, SwaggerParameter>;
  };
  readonly operations: SpecOperation[] = [];
  private readonly ajv = new Ajv2019({ strict: false, allErrors: true, validateFormats: true });
  private readonly cache = new Map<string, ValidateFunction>();

  constructor(specPath = `${SPEC_DIR}/containerInstance.json`) {
    this.spec = JSON.parse(readFileSync(specPath, 'utf8')) as SpecValidator['spec'];
    addFormats(this.ajv);
    const int = (bits: number) => (n: number) => Number.isInteger(n) && Math.abs(n) <= 2 ** (bits - 1);
    this.ajv.addFormat('int32', { type: 'number', validate: int(32) });
    this.ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isInteger(n) });
    this.ajv.addFormat('double', { type: 'number', validate: (n: number) => Number.isFinite(n) });
    this.ajv.addFormat('float', { type: 'number', validate: (n: number) => Number.isFinite(n) });
    const allOfMembers = new Set<string>();
    for (const def of Object.values(this.spec.definitions)) {
      if (isObject(def) && Array.isArray(def.allOf)) {
        for (const m of def.allOf)
          if (isObject(m) && typeof m.$ref === 'string') allOfMembers.add(m.$ref.replace('#/definitions/', ''));
      }
    }
    const definitions = Object.fromEntries(
      Object.entries(this.spec.definitions).map(([name, def]) => [name, tighten(def, allOfMembers.has(name))]),
    );
    this.ajv.addSchema({ $id: SPEC_ID, definitions });

    for (const [template, item] of Object.entries(this.spec.paths)) {
      for (const [method, op] of Object.entries(item)) {
        if (method === 'parameters') continue;
        const source = template
          .split(/(\{[^}]+\})/)
          .map((p) => (/^\{[^}]+\}$/.test(p) ? '[^/]+' : p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
          .join('');
        this.operations.push({
          operationId: op.operationId,
          method: method.toUpperCase(),
          template,
          pattern: new RegExp(`^${source}/?$`, 'i'),
          op,
        });
      }
    }
  }

  findOperation(method: string, path: string): SpecOperation | undefined {
    return this.operations.find((o) => o.method === method.toUpperCase() && o.pattern.test(path));
  }

  operation(operationId: string): SpecOperation {
    const op = this.operations.find((o) => o.operationId === operationId);
    if (!op) throw new Error(`no operation ${operationId} in the spec`);
    return op;
  }

  private validator(schema: Json): ValidateFunction {
    const key = JSON.stringify(schema);
    let v = this.cache.get(key);
    if (!v) {
      const rewritten = JSON.parse(key.replaceAll('"#/definitions/', `"${SPEC_ID}#/definitions/`)) as Json;
      v = this.ajv.compile(tighten(rewritten, false) as Json);
      this.cache.set(key, v);
    }
    return v;
  }

  private static describe(errors: ErrorObject[] | null | undefined): string[] {
    return (errors ?? []).map(
      (e) =>
        `${e.instancePath || '(root)'} ${e.message ?? ''}${e.params && 'unevaluatedProperty' in e.params ? ` '${String(e.params.unevaluatedProperty)}'` : ''}`,
    );
  }

  /** Problems with a request body for an operation ([] when it conforms). */
  requestErrors(operationId: string, body: unknown): string[] {
    const op = this.operation(operationId).op;
    const param = (op.parameters ?? []).find((p) => p.in === 'body');
    if (!param?.schema) return body === undefined ? [] : [`${operationId} takes no body`];
    if (body === undefined) return param.required ? [`${operationId} requires a body`] : [];
    const v = this.validator(param.schema);
    return v(body) ? [] : SpecValidator.describe(v.errors);
  }

  /** Problems with a response for an operation ([] when it conforms). */
  responseErrors(operationId: string, status: number, body: unknown): string[] {
    const op = this.operation(operationId).op;
    const declared = op.responses[String(status)];
    const response = declared ?? (status >= 400 ? op.responses.default : undefined);
    if (!response)
      return [
        `status ${status} is not a declared response of ${operationId} (declared: ${Object.keys(op.responses).join(', ')})`,
      ];
    if (!response.schema)
      return body === undefined || body === '' ? [] : [`${operationId} ${status} declares no body, got one`];
    const v = this.validator(response.schema);
    const errors = v(body) ? [] : SpecValidator.describe(v.errors);
    // x-ms-secret: the service never returns these values on reads.
    if (this.operation(operationId).method === 'GET') errors.push(...this.secretsIn(response.schema, body, ''));
    return errors;
  }

  private secretsIn(schemaIn: Json, value: unknown, at: string): string[] {
    const schema = this.resolve(schemaIn);
    if (Array.isArray(value))
      return schema.items ? value.flatMap((v, i) => this.secretsIn(schema.items as Json, v, `${at}/${i}`)) : [];
    if (!isObject(value)) return [];
    const props = this.propertiesOf(schema);
    const out: string[] = [];
    for (const [k, v] of Object.entries(value)) {
      const ps = props[k] ?? (isObject(schema.additionalProperties) ? schema.additionalProperties : undefined);
      if (!ps) continue;
      if (ps['x-ms-secret'] === true) out.push(`${at}/${k} is x-ms-secret and must not be returned`);
      else out.push(...this.secretsIn(ps, v, `${at}/${k}`));
    }
    return out;
  }

  definitionErrors(name: string, value: unknown): string[] {
    const v = this.validator({ $ref: `#/definitions/${name}` });
    return v(value) ? [] : SpecValidator.describe(v.errors);
  }

  /** A copy of `value` without the properties the spec marks readOnly (turns a GET body into a PUT body). */
  stripReadOnly(definition: string, value: unknown): unknown {
    return this.strip({ $ref: `#/definitions/${definition}` }, value);
  }

  /** The properties a schema declares, including those it inherits through allOf. */
  private propertiesOf(schema: Json): Record<string, Json> {
    const props: Record<string, Json> = {};
    const collect = (s: Json): void => {
      const r = this.resolve(s);
      if (Array.isArray(r.allOf)) for (const m of r.allOf as Json[]) collect(m);
      if (isObject(r.properties)) Object.assign(props, r.properties);
    };
    collect(schema);
    return props;
  }

  private resolve(schema: Json): Json {
    let s = schema;
    while (typeof s.$ref === 'string') s = this.spec.definitions[s.$ref.replace('#/definitions/', '')] as Json;
    return s;
  }

  private strip(schemaIn: Json, value: unknown): unknown {
    const schema = this.resolve(schemaIn);
    if (Array.isArray(value)) return schema.items ? value.map((v) => this.strip(schema.items as Json, v)) : value;
    if (!isObject(value)) return value;
    const props = this.propertiesOf(schema);
    const out: Json = {};
    for (const [k, v] of Object.entries(value)) {
      const ps = props[k];
      if (ps) {
        if (ps.readOnly === true || this.resolve(ps).readOnly === true) continue;
        out[k] = this.strip(ps, v);
      } else if (isObject(schema.additionalProperties)) {
        out[k] = this.strip(schema.additionalProperties, v);
      } else {
        out[k] = v;
      }
    }
    return out;
  }
}
