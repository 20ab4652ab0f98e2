import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { generateKeyAndCsr } from "../src/agent/index.js";
import { isMandateError } from "../src/errors/index.js";
import { availableBackends, startTestControlPlane } from "./helpers/control-plane.js";
import { issuerKey, signToken } from "./helpers/oidc.js";

const backends = await availableBackends();

describe.each(backends.map((b) => [b.name, b] as const))("platform-token replay on %s", (_name, backend) => {
  it("lets exactly one of several concurrent joins with the same token through", async () => {
    const { dataDir, storage, cleanup } = await backend.create();
    const plane = await startTestControlPlane({ dataDir, storage });
    try {
      const key = await issuerKey();
      const ctx = plane.context;
      await ctx.agents.create({ name: "ci", roles: [], labels: {}, createdBy: "test" });
      await ctx.joinRules!.create({ method: "oidc", agent: "ci", issuer: "https://ci.example", audience: "mandate", jwks: { keys: [key.publicJwk] }, allow: [{ project: "acme/*" }], createdBy: "test" });
      const now = Math.floor(Date.now() / 1000);
      const token = await signToken(key, { iss: "https://ci.example", aud: "mandate", exp: now + 300, iat: now, jti: randomUUID(), project: "acme/shop" });
      const csrs = await Promise.all(Array.from({ length: 4 }, () => generateKeyAndCsr()));
      const results = await Promise.allSettled(csrs.map(({ csrPem }) => ctx.attestedJoins!.join({ method: "oidc", token, csr: csrPem })));
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
      for (const r of results) if (r.status === "rejected") expect(isMandateError(r.reason, "JOIN_TOKEN_USED")).toBe(true);
      expect(await ctx.agents.instances("ci")).toHaveLength(1);
    } finally {
      await plane.close();
      await cleanup();
    }
  });
});
