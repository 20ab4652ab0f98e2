import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";

/**
 * An external classifier a team already runs. The proxy POSTs
 *   {direction, model, agent, team, texts: [{role, text}]}
 * and expects {flagged: boolean, categories?: string[], redacted?: string[]}
 * (`redacted`, when given, holds each text with the classifier's redactions applied).
 */
export interface HookVerdict {
  flagged: boolean;
  categories: string[];
  redacted: string[] | undefined;
}

export interface HookRequest {
  direction: "input" | "output";
  model: string;
  agent: string | undefined;
  team: string | undefined;
  texts: { role: string; text: string }[];
}

export function callClassifier(url: string, body: HookRequest, timeoutMs: number): Promise<HookVerdict> {
  const target = new URL(url);
  const payload = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = (target.protocol === "https:" ? httpsRequest : httpRequest)(target, { method: "POST", headers: { "content-type": "application/json", "content-length": String(payload.length) }, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (c: Buffer) => {
        size += c.length;
        if (size > 4 * 1024 * 1024) req.destroy(new Error("classifier answer too large"));
        else chunks.push(c);
      });
      res.on("end", () => {
        if ((res.statusCode ?? 500) >= 300) return reject(new Error(`classifier answered HTTP ${res.statusCode}`));
        try {
          const parsed = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { flagged?: unknown; categories?: unknown; redacted?: unknown };
          if (typeof parsed.flagged !== "boolean") return reject(new Error("classifier answer has no boolean `flagged`"));
          const categories = Array.isArray(parsed.categories) ? parsed.categories.filter((c): c is string => typeof c === "string").slice(0, 32) : [];
          const redacted = Array.isArray(parsed.redacted) && parsed.redacted.length === body.texts.length && parsed.redacted.every((t) => typeof t === "string") ? (parsed.redacted as string[]) : undefined;
          resolve({ flagged: parsed.flagged, categories, redacted });
        } catch {
          reject(new Error("classifier answer is not JSON"));
        }
      });
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`classifier did not answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end(payload);
  });
}
