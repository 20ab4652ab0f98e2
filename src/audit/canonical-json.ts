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
      // Loops and concatenation rather than entries/filter/map/join: every audited event is
      // canonicalized on the event loop, and the intermediate arrays were most of its cost.
      if (Array.isArray(value)) {
        let out = "[";
        for (let i = 0; i < value.length; i++) {
          const item: unknown = value[i];
          if (i > 0) out += ",";
          out += item === undefined || typeof item === "function" ? "null" : canonicalJson(item);
        }
        return `${out}]`;
      }
      if (typeof (value as { toJSON?: unknown }).toJSON === "function") return canonicalJson((value as { toJSON: () => unknown }).toJSON());
      const record = value as Record<string, unknown>;
      // Default sort compares UTF-16 code units, exactly as RFC 8785 §3.2.3 requires.
      const keys = Object.keys(record).sort();
      let out = "{";
      for (const key of keys) {
        const member = record[key];
        if (member === undefined || typeof member === "function") continue;
        if (out.length > 1) out += ",";
        out += `${JSON.stringify(key)}:${canonicalJson(member)}`;
      }
      return `${out}}`;
    }
    case "bigint":
      throw new MandateError("INVALID_ARGUMENT", "canonical JSON cannot represent bigint values");
    default:
      throw new MandateError("INVALID_ARGUMENT", `canonical JSON cannot represent ${typeof value}`);
  }
}
