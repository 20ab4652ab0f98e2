import { isMandateError } from "../errors/index.js";
import type { AuditEvent, AuditEventInput } from "./event.js";
import type { AuditLog } from "./log.js";

/**
 * "No audit, no action": the intent is made durable before the action runs, and the
 * outcome is recorded after, linked to the intent. If the intent cannot be written the
 * action never starts; if the process dies mid-action, the intent is the evidence.
 */
export async function auditedAction<T>(log: AuditLog, intent: AuditEventInput, action: (intent: AuditEvent) => Promise<T>): Promise<T> {
  const recorded = await log.append({ ...intent, code: "INTENT", outcome: { status: "ok", message: "intent recorded" } });
  const started = performance.now();
  const correlation = { ...intent.correlation, parentEvent: recorded.id };
  try {
    const result = await action(recorded);
    await log.append({ ...intent, correlation, code: "OK", outcome: { status: "ok", latencyMs: Math.round(performance.now() - started) } });
    return result;
  } catch (error) {
    const code = isMandateError(error) ? error.code : "INTERNAL";
    await log
      .append({ ...intent, correlation, code, outcome: { status: "error", error: code, message: (error as Error).message, latencyMs: Math.round(performance.now() - started) } })
      .catch(() => undefined);
    throw error;
  }
}
