import { MandateError } from "../../errors/index.js";

/**
 * google.protobuf.Struct in the plain-object shape the runtime-loaded proto expects. The
 * loader has no JSON mapping for Struct, so claims are converted here, both ways. The
 * well-known types come from the protobuf runtime's built-in descriptors, which name
 * Value's members in camelCase even with keepCase; only field numbers reach the wire.
 */
export type ProtoValue =
  | { nullValue: "NULL_VALUE" }
  | { numberValue: number }
  | { stringValue: string }
  | { boolValue: boolean }
  | { structValue: ProtoStruct }
  | { listValue: { values: ProtoValue[] } };

export interface ProtoStruct {
  fields: Record<string, ProtoValue>;
}

// Claims come from a verified token, but a hostile issuer inside a federated domain could
// still nest deeply; recursion is bounded so one token cannot exhaust the stack.
const MAX_DEPTH = 32;

// A claim named "__proto__" must stay an ordinary key, not replace the object's prototype.
function define(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function toValue(value: unknown, depth: number): ProtoValue {
  if (depth > MAX_DEPTH) throw new MandateError("INVALID_ARGUMENT", "claims are nested too deeply to encode");
  if (value === null || value === undefined) return { nullValue: "NULL_VALUE" };
  switch (typeof value) {
    case "string":
      return { stringValue: value };
    case "number":
      return { numberValue: value };
    case "boolean":
      return { boolValue: value };
    case "bigint":
      return { numberValue: Number(value) };
    case "object":
      if (Array.isArray(value)) return { listValue: { values: value.map((item) => toValue(item, depth + 1)) } };
      return { structValue: toStructAt(value as Record<string, unknown>, depth + 1) };
    default:
      throw new MandateError("INVALID_ARGUMENT", `a claim of type ${typeof value} cannot be encoded`);
  }
}

function toStructAt(object: Record<string, unknown>, depth: number): ProtoStruct {
  const fields: Record<string, ProtoValue> = {};
  for (const [key, value] of Object.entries(object)) define(fields, key, toValue(value, depth));
  return { fields };
}

export function toProtoStruct(object: Record<string, unknown>): ProtoStruct {
  return toStructAt(object, 0);
}

function fromValue(value: Record<string, unknown> | undefined, depth: number): unknown {
  if (depth > MAX_DEPTH) throw new MandateError("INVALID_ARGUMENT", "struct is nested too deeply to decode");
  if (value === undefined || value === null) return null;
  const kind = typeof value.kind === "string" ? value.kind : Object.keys(value).find((key) => key.endsWith("Value"));
  switch (kind) {
    case "numberValue":
      return value.numberValue;
    case "stringValue":
      return value.stringValue;
    case "boolValue":
      return value.boolValue;
    case "structValue":
      return fromStructAt(value.structValue as ProtoStruct | undefined, depth + 1);
    case "listValue": {
      const values = ((value.listValue as { values?: Record<string, unknown>[] } | undefined)?.values ?? []) as Record<string, unknown>[];
      return values.map((item) => fromValue(item, depth + 1));
    }
    default:
      return null;
  }
}

function fromStructAt(struct: { fields?: Record<string, unknown> } | undefined | null, depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(struct?.fields ?? {})) define(out, key, fromValue(value as Record<string, unknown>, depth));
  return out;
}

/** The inverse of toProtoStruct, for clients of the Workload API (and tests). */
export function fromProtoStruct(struct: { fields?: Record<string, unknown> } | undefined | null): Record<string, unknown> {
  return fromStructAt(struct, 0);
}
