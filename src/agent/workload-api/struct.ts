import { MandateError } from "../../errors/index.js";

/**
 * google.protobuf.Struct in the plain-object shape the runtime-loaded proto expects
 * (snake_case, oneof members by name). The loader has no built-in JSON mapping for
 * Struct, so claims are converted here, both ways.
 */
export type ProtoValue =
  | { null_value: "NULL_VALUE" }
  | { number_value: number }
  | { string_value: string }
  | { bool_value: boolean }
  | { struct_value: ProtoStruct }
  | { list_value: { values: ProtoValue[] } };

export interface ProtoStruct {
  fields: Record<string, ProtoValue>;
}

// Claims come from a verified token, but a hostile issuer inside a federated domain could
// still nest deeply; recursion is bounded so one token cannot exhaust the stack.
const MAX_DEPTH = 32;

function toValue(value: unknown, depth: number): ProtoValue {
  if (depth > MAX_DEPTH) throw new MandateError("INVALID_ARGUMENT", "claims are nested too deeply to encode");
  if (value === null || value === undefined) return { null_value: "NULL_VALUE" };
  switch (typeof value) {
    case "string":
      return { string_value: value };
    case "number":
      return { number_value: value };
    case "boolean":
      return { bool_value: value };
    case "bigint":
      return { number_value: Number(value) };
    case "object":
      if (Array.isArray(value)) return { list_value: { values: value.map((item) => toValue(item, depth + 1)) } };
      return { struct_value: toStructAt(value as Record<string, unknown>, depth + 1) };
    default:
      throw new MandateError("INVALID_ARGUMENT", `a claim of type ${typeof value} cannot be encoded`);
  }
}

function toStructAt(object: Record<string, unknown>, depth: number): ProtoStruct {
  const fields: Record<string, ProtoValue> = {};
  for (const [key, value] of Object.entries(object)) fields[key] = toValue(value, depth);
  return { fields };
}

export function toProtoStruct(object: Record<string, unknown>): ProtoStruct {
  return toStructAt(object, 0);
}

function fromValue(value: Record<string, unknown> | undefined, depth: number): unknown {
  if (depth > MAX_DEPTH) throw new MandateError("INVALID_ARGUMENT", "struct is nested too deeply to decode");
  if (value === undefined || value === null) return null;
  const kind = typeof value.kind === "string" ? value.kind : Object.keys(value).find((key) => key.endsWith("_value"));
  switch (kind) {
    case "number_value":
      return value.number_value;
    case "string_value":
      return value.string_value;
    case "bool_value":
      return value.bool_value;
    case "struct_value":
      return fromStructAt(value.struct_value as ProtoStruct | undefined, depth + 1);
    case "list_value": {
      const values = ((value.list_value as { values?: Record<string, unknown>[] } | undefined)?.values ?? []) as Record<string, unknown>[];
      return values.map((item) => fromValue(item, depth + 1));
    }
    default:
      return null;
  }
}

function fromStructAt(struct: { fields?: Record<string, unknown> } | undefined | null, depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(struct?.fields ?? {})) out[key] = fromValue(value as Record<string, unknown>, depth);
  return out;
}

/** The inverse of toProtoStruct, for clients of the Workload API (and tests). */
export function fromProtoStruct(struct: { fields?: Record<string, unknown> } | undefined | null): Record<string, unknown> {
  return fromStructAt(struct, 0);
}
