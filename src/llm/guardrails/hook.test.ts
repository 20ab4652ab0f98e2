import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GuardrailsConfig } from "../config.js";
import type { PromptText } from "../types.js";
import { Guardrails } from "./index.js";

function texts(...values: string[]): PromptText[] {
  return values.map((v) => {
    const t: PromptText = { role: "user", text: v, replace: (x) => (t.text = x) };
    return t;
  });
}
const meta = { model: "m", agent: "a", team: "t" };

describe("external classifier hook", () => {
  let server: Server;
  let url = "";
  const seen: unknown[] = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = "";
      req.on("data", (c: Buffer) => (body += c.toString()));
      req.on("end", () => {
        const request = JSON.parse(body) as { texts: { text: string }[] };
        seen.push(request);
        const bad = request.texts.some((t) => t.text.includes("forbidden"));
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ flagged: bad, categories: bad ? ["policy"] : [], redacted: request.texts.map((t) => t.text.replace("forbidden", "[REMOVED]")) }));
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/classify`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const guard = (hook: Record<string, unknown>) => new Guardrails(GuardrailsConfig.parse({ secrets: {}, pii: {}, injection: {}, hook: { url, ...hook } }));

  it("blocks what the classifier flags, passes what it does not, and sends it the texts with their roles", async () => {
    const g = guard({ input: "block" });
    const policy = g.policy([], "m");
    const blocked = await g.screen(texts("a forbidden thing"), policy, "input", meta);
    expect(blocked.blocked).toMatchObject({ detector: "hook", action: "block", findings: [{ kind: "policy" }] });
    expect(seen.at(-1)).toMatchObject({ direction: "input", model: "m", agent: "a", team: "t", texts: [{ role: "user", text: "a forbidden thing" }] });
    expect((await g.screen(texts("fine"), policy, "input", meta)).blocked).toBeUndefined();
  });

  it("redacts with the classifier's own redactions", async () => {
    const g = guard({ input: "redact" });
    const t = texts("keep this forbidden word out");
    const result = await g.screen(t, g.policy([], "m"), "input", meta);
    expect(result.changed).toBe(true);
    expect(t[0]!.text).toBe("keep this [REMOVED] word out");
  });

  it("an unreachable classifier refuses the request unless failOpen, which flags instead", async () => {
    const closed = new Guardrails(GuardrailsConfig.parse({ secrets: {}, pii: {}, injection: {}, hook: { url: "http://127.0.0.1:9/none", input: "block", timeoutMs: 500 } }));
    const refused = await closed.screen(texts("x"), closed.policy([], "m"), "input", meta);
    expect(refused.blocked?.error).toBeDefined();
    const open = new Guardrails(GuardrailsConfig.parse({ secrets: {}, pii: {}, injection: {}, hook: { url: "http://127.0.0.1:9/none", input: "block", timeoutMs: 500, failOpen: true } }));
    const flagged = await open.screen(texts("x"), open.policy([], "m"), "input", meta);
    expect(flagged.blocked).toBeUndefined();
    expect(flagged.verdicts[0]).toMatchObject({ detector: "hook", action: "flag" });
  });

  it("rules override actions per role and per model", () => {
    const g = new Guardrails(GuardrailsConfig.parse({ secrets: { input: "flag" }, rules: [{ role: "incident-reader", secrets: { input: "block" } }, { model: "strict-model", pii: { output: "redact" } }] }));
    expect(g.policy(["incident-reader"], "m").secrets.input).toBe("block");
    expect(g.policy(["other"], "m").secrets.input).toBe("flag");
    expect(g.policy([], "strict-model").pii.output).toBe("redact");
  });
});
