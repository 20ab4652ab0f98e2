import { request } from "node:https";
import { connect } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ControlPlane } from "../src/server/index.js";
import { type TestAgent, joinTestAgent } from "./helpers/agent.js";
import { closeTestControlPlane, startTestControlPlane } from "./helpers/control-plane.js";

interface Reply {
  status: number;
  body: any;
}

function whoami(plane: ControlPlane, agent: TestAgent, options: { mtls?: boolean; headers?: Record<string, string> }): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${plane.url}/v1/whoami`,
      {
        method: "GET",
        ca: agent.credentials.bundlePem,
        ...(options.mtls ? { cert: agent.credentials.svidPem, key: agent.credentials.keyPem } : {}),
        headers: options.headers ?? {},
        agent: false,
      },
      (res) => {
        let text = "";
        res.on("data", (c: Buffer) => (text += c.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

describe("workload authentication for the proxies (mTLS or JWT-SVID, delegation beside it)", () => {
  let plane: ControlPlane;
  let alpha: TestAgent;
  let beta: TestAgent;

  beforeAll(async () => {
    plane = await startTestControlPlane();
    alpha = await joinTestAgent(plane, "alpha");
    beta = await joinTestAgent(plane, "beta");
  });
  afterAll(async () => {
    await closeTestControlPlane(plane);
  });

  it("refuses TLS 1.2 renegotiation, so the identity cached for a connection cannot be swapped", async () => {
    const { hostname, port } = new URL(plane.url);
    const socket = connect({ host: hostname, port: Number(port), ca: alpha.credentials.bundlePem, cert: alpha.credentials.svidPem, key: alpha.credentials.keyPem, maxVersion: "TLSv1.2", servername: "localhost", checkServerIdentity: () => undefined });
    await new Promise<void>((resolve, reject) => socket.once("secureConnect", resolve).once("error", reject));
    expect(socket.getProtocol()).toBe("TLSv1.2");
    const outcome = await new Promise<string>((resolve) => {
      socket.once("error", (error) => resolve(`error: ${error.message}`));
      socket.once("close", () => resolve("closed"));
      const started = socket.renegotiate({ rejectUnauthorized: true }, (error) => resolve(error ? `error: ${error.message}` : "renegotiated"));
      if (!started) resolve("refused locally");
    });
    socket.destroy();
    expect(outcome).not.toBe("renegotiated");
  });

  it("accepts an X509-SVID on the connection, with the bearer slot as the delegation token", async () => {
    const plain = await whoami(plane, alpha, { mtls: true });
    expect(plain.status).toBe(200);
    expect(plain.body).toMatchObject({ spiffeId: alpha.spiffeId, agent: "alpha", via: "mtls", delegationPresented: false });
    const withDelegation = await whoami(plane, alpha, { mtls: true, headers: { authorization: "Bearer some.delegation.token" } });
    expect(withDelegation.body.delegationPresented).toBe(true);
    const viaHeader = await whoami(plane, alpha, { mtls: true, headers: { "x-mandate-delegation": "some.delegation.token" } });
    expect(viaHeader.body.delegationPresented).toBe(true);
  });

  it("accepts a JWT-SVID bearer for the server's SPIFFE ID or its URL, alone or composed with a delegation token", async () => {
    const jwt = await alpha.jwtSvid();
    const alone = await whoami(plane, alpha, { headers: { authorization: `Bearer ${jwt}` } });
    expect(alone.status, JSON.stringify(alone.body)).toBe(200);
    expect(alone.body).toMatchObject({ spiffeId: alpha.spiffeId, via: "jwt-svid", delegationPresented: false });
    const composed = await whoami(plane, alpha, { headers: { "x-api-key": `${jwt}~some.delegation.token` } });
    expect(composed.body).toMatchObject({ spiffeId: alpha.spiffeId, delegationPresented: true });
    const forUrl = await alpha.jwtSvid(plane.url);
    expect((await whoami(plane, alpha, { headers: { authorization: `Bearer ${forUrl}` } })).status).toBe(200);
  });

  it("refuses a JWT-SVID for another audience, a forged one, and no credential at all — and records each refusal", async () => {
    const other = await alpha.jwtSvid("some-other-service");
    const wrongAudience = await whoami(plane, alpha, { headers: { authorization: `Bearer ${other}` } });
    expect(wrongAudience.status).toBe(401);
    expect(wrongAudience.body.error.code).toBe("JWT_AUDIENCE_MISMATCH");

    const jwt = await alpha.jwtSvid();
    const [h, p] = jwt.split(".");
    const claims = JSON.parse(Buffer.from(p!, "base64url").toString());
    const forgedPayload = Buffer.from(JSON.stringify({ ...claims, sub: beta.spiffeId })).toString("base64url");
    const forged = await whoami(plane, alpha, { headers: { authorization: `Bearer ${h}.${forgedPayload}.${jwt.split(".")[2]}` } });
    expect(forged.status).toBe(401);
    expect(forged.body.error.code).toBe("INVALID_JWT");

    const none = await whoami(plane, alpha, {});
    expect(none.status).toBe(401);
    expect(none.body.error.message).toContain("JWT-SVID");

    const refusals = await plane.context.audit.list({ type: "api.whoami" });
    expect(refusals.map((e) => e.code).sort()).toEqual(["INVALID_JWT", "JWT_AUDIENCE_MISMATCH", "UNAUTHENTICATED"]);
    // The refused credential itself is not written down.
    expect(JSON.stringify(refusals)).not.toContain(jwt.split(".")[2]);
  });

  it("refuses two identities in one request and two different delegation tokens", async () => {
    const betaJwt = await beta.jwtSvid();
    const mixed = await whoami(plane, alpha, { mtls: true, headers: { authorization: `Bearer ${betaJwt}~some.delegation.token` } });
    expect(mixed.status).toBe(401);
    expect(mixed.body.error.message).toContain("present one identity");
    const twoTokens = await whoami(plane, alpha, { mtls: true, headers: { authorization: "Bearer a.b.c", "x-mandate-delegation": "d.e.f" } });
    expect(twoTokens.status).toBe(401);
    const malformed = await whoami(plane, alpha, { headers: { authorization: "Bearer a~b~c" } });
    expect(malformed.status).toBe(401);
    const notBearer = await whoami(plane, alpha, { headers: { authorization: "Basic abc" } });
    expect(notBearer.status).toBe(401);
  });

  it("refuses a locked agent's JWT-SVID at once", async () => {
    const jwt = await beta.jwtSvid();
    expect((await whoami(plane, beta, { headers: { authorization: `Bearer ${jwt}` } })).status).toBe(200);
    await plane.context.locks.add({ kind: "agent", value: "beta", reason: "test", createdBy: "test" });
    const locked = await whoami(plane, beta, { headers: { authorization: `Bearer ${jwt}` } });
    expect(locked.status).toBe(403);
    expect(locked.body.error.code).toBe("LOCKED");
  });
});
