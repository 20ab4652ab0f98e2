import type { z } from "zod";
import { MandateError } from "../errors/index.js";

/** Validates a request part with zod; unknown fields are rejected by the strict schemas, not dropped. */
export function parseRequest<T extends z.ZodType>(schema: T, value: unknown, what = "request body"): z.infer<T> {
  const result = schema.safeParse(value ?? {});
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const path = issue.path.length ? issue.path.join(".") : what;
    throw new MandateError("MALFORMED_REQUEST", `${what}: ${path}: ${issue.message}`);
  }
  return result.data;
}
