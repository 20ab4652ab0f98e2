import { MandateError } from "../errors/index.js";

/**
 * RFC 8785 JSON Canonicalization Scheme: object members sorted by their UTF-16 code
 * units, no whitespace, strings and numbers serialized as ECMAScript does (which is
 * what JSON.stringify implements). The audit chain hashes this form, so any reader in
 * any language can recompute the hashes from the stored events.
 */
export function canonicalJson(value: unknown): string {
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "number":
      if (!Number.isFinite(value)) throw new MandateError("INVALID_ARGUMENT", "canonical JSON cannot represent NaN or Infinity");
      return JSON.stringify(value);
    case "boolean":
      return value ? "true" : "false";
    case "object": {
      if (value === null) return "null";
      if (Array.isArray(value)) return `[${value.map((item) => (item === undefined || typeof item === "function" ? "null" : canonicalJson(item))).join(",")}]`;
      if (typeof (value as { toJSON?: unknown }).toJSON === "function") return canonicalJson((value as { toJSON: () => unknown }).toJSON());
      const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined && typeof v !== "function");
      // Default sort compares UTF-16 code units, exactly as RFC 8785 §3.2.3 requires.
      entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
    }
    case "bigint":
      throw new MandateError("INVALID_ARGUMENT", "canonical JSON cannot represent bigint values");
    default:
      throw new MandateError("INVALID_ARGUMENT", `canonical JSON cannot represent ${typeof value}`);
  }
}
