import { X509Certificate, createHmac, createPrivateKey, generateKeyPairSync, sign } from "node:crypto";
import { cp, rm } from "node:fs/promises";
import { Agent, request } from "node:https";
import type { TLSSocket } from "node:tls";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentCredentials, SvidRenewer, generateKeyAndCsr, readCredentials } from "../src/agent/index.js";
import { pemDecodeAll } from "../src/identity/index.js";
import { RENEWAL_PROOF_TYPE, type RenewalProofClaims, csrDigest, signRenewalProof } from "../src/identity/renewal-proof.js";
import type { ControlPlane } from "../src/server/index.js";
import { joinTestAgent } from "./helpers/agent.js";
import { tempDir } from "./helpers/backends.js";
import { mandate } from "./helpers/cli.js";
import { startTestControlPlane } from "./helpers/control-plane.js";
import { freshPostgresDatabase, postgresBaseUrl } from "./helpers/postgres.js";

const postgres = await postgresBaseUrl();
if (!postgres) console.log("renewal-proof: no PostgreSQL reachable; the two-control-plane case is skipped");

const PATH = "/v1/svid/x509/proof";

interface Reply {
  status: number;
  body: any;
}

/** A client with no client certificate: the proof, not the TLS handshake, carries the identity. */
function post(plane: ControlPlane, caPem: string, body: string | object, agent?: Agent, headers: Record<string, string> = {}): Promise<Reply> {
  const payload = typeof body === "string" ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(`${plane.url}${PATH}`, { method: "POST", ca: caPem, agent: agent ?? false, headers: { "content-type": "application/json", ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString();
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          /* keep text */
        }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    req.on("error", reject);
    req.end(payload);
  });
}

/** What an honest agent sends, with any part overridable to make it dishonest. */
async function renewalBody(creds: AgentCredentials, overrides: Partial<RenewalProofClaims> & { key?: ReturnType<typeof createPrivateKey>; csrPem?: string } = {}) {
  const { csrPem, csrDer, keyPem } = await generateKeyAndCsr();
  const leafDer = pemDecodeAll(creds.svidPem)[0]!;
  const { key, csrPem: otherCsr, ...claims } = overrides;
  const proof = signRenewalProof(key ?? createPrivateKey(creds.keyPem), leafDer, {
    aud: `spiffe://${creds.state.trustDomain}/mandate/server`,
    sub: creds.state.spiffeId,
    iat: Math.floor(Date.now() / 1000),
    instance: creds.state.instanceId,
    generation: creds.state.generation ?? 1,
    serial: creds.state.serial.toLowerCase(),
    csr: csrDigest(csrDer),
    ...claims,
  });
  return { body: { csr: otherCsr ?? csrPem, proof }, keyPem };
}

/** The credentials a successful renewal hands back, in the shape the daemon keeps. */
function next(creds: AgentCredentials, reply: Reply, keyPem: string): AgentCredentials {
  return { ...creds, svidPem: reply.body.svidPem, keyPem, state: { ...creds.state, serial: reply.body.serial, generation: reply.body.generation } };
}

async function generationOf(plane: ControlPlane, instanceId: string): Promise<number> {
  const row = await plane.context.store.db.selectFrom("instances").select("generation").where("id", "=", instanceId).executeTakeFirstOrThrow();
  return Number(row.generation);
}

async function events(plane: ControlPlane, type: string): Promise<any[]> {
  const rows = await plane.context.store.db.selectFrom("audit_events").select("body").where("type", "=", type).orderBy("seq").execute();
  return rows.map((r) => JSON.parse(r.body));
}

describe("renewal by proof of possession", () => {
  let plane: ControlPlane;
  let caPem: string;

  beforeAll(async () => {
    plane = await startTestControlPlane();
    caPem = plane.context.authority.x509AuthoritiesPem();
  });
  afterAll(async () => {
    await plane?.close();
  });

  async function freshAgent(name: string): Promise<AgentCredentials> {
    return (await joinTestAgent(plane, name)).credentials;
  }

  it("renews over one kept-alive connection without a client certificate, each time with the SVID the last renewal returned, audited like mTLS renewals", async () => {
    let creds = await freshAgent("proof-valid");
    expect(creds.state.generation).toBe(1);
    let connections = 0;
    const count = (_socket: TLSSocket) => void connections++;
    plane.app.server.on("secureConnection", count);
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: caPem });
    try {
      for (let i = 0; i < 4; i++) {
        const { body, keyPem } = await renewalBody(creds);
        const reply = await post(plane, caPem, body, agent);
        expect(reply.status, JSON.stringify(reply.body)).toBe(200);
        expect(reply.body.spiffeId).toBe(creds.state.spiffeId);
        expect(reply.body.instanceId).toBe(creds.state.instanceId);
        expect(reply.body.generation).toBe(i + 2);
        expect(reply.body.serial).not.toBe(creds.state.serial);
        // Signed by the intermediate it names (the leaf signature is made on the signature workers), for the new key.
        const [leaf, intermediate] = pemDecodeAll(reply.body.svidPem).map((der) => new X509Certificate(der));
        expect(leaf!.verify(intermediate!.publicKey)).toBe(true);
        expect(leaf!.checkPrivateKey(createPrivateKey(keyPem))).toBe(true);
        creds = next(creds, reply, keyPem);
      }
    } finally {
      plane.app.server.off("secureConnection", count);
      agent.destroy();
    }
    expect(connections).toBe(1);
    expect(await generationOf(plane, creds.state.instanceId)).toBe(5);
    const renewed = (await events(plane, "identity.renew")).filter((e) => e.actor.instance === creds.state.instanceId && e.code === "OK");
    expect(renewed).toHaveLength(4);
    expect(renewed[3].details).toMatchObject({ method: "proof", generation: 5 });
    expect(renewed[3].target.serial).toBe(creds.state.serial);
    expect(renewed[3].actor).toMatchObject({ kind: "agent", agent: "proof-valid" });
  });

  it("refuses a proof signed by another key, and changes nothing", async () => {
    const creds = await freshAgent("proof-forged");
    const other = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
    const { body } = await renewalBody(creds, { key: other });
    const reply = await post(plane, caPem, body);
    expect(reply.status).toBe(401);
    expect(reply.body.error.code).toBe("PROOF_INVALID");
    expect(reply.body.error.message).toContain("does not verify");
    expect(await generationOf(plane, creds.state.instanceId)).toBe(1);
    // A certificate is public: presenting one without its key locks nothing.
    expect(plane.context.locks.lockFor({ spiffeId: creds.state.spiffeId, agent: "proof-forged", instanceId: creds.state.instanceId })).toBeUndefined();
    const refused = (await events(plane, "identity.renew")).filter((e) => e.code === "PROOF_INVALID" && e.target.serial === creds.state.serial.toLowerCase());
    expect(refused).toHaveLength(1);
    expect(refused[0].actor.kind).toBe("anonymous");
    // The real key still renews.
    expect((await post(plane, caPem, (await renewalBody(creds)).body)).status).toBe(200);
  });

  it("refuses a proof by the right key over another CSR", async () => {
    const creds = await freshAgent("proof-other-csr");
    const { csrPem } = await generateKeyAndCsr();
    const { body } = await renewalBody(creds, { csrPem });
    const reply = await post(plane, caPem, body);
    expect(reply.status).toBe(401);
    expect(reply.body.error).toMatchObject({ code: "PROOF_INVALID" });
    expect(reply.body.error.message).toContain("another CSR");
    expect(await generationOf(plane, creds.state.instanceId)).toBe(1);
  });

  it("accepts a proof once: the same request replayed is refused, and the honest agent keeps renewing", async () => {
    const creds = await freshAgent("proof-replay");
    const { body, keyPem } = await renewalBody(creds);
    const first = await post(plane, caPem, body);
    expect(first.status).toBe(200);
    const replay = await post(plane, caPem, body);
    expect(replay.status).toBe(401);
    expect(replay.body.error.code).toBe("PROOF_INVALID");
    expect(replay.body.error.message).toContain("already used");
    expect(await generationOf(plane, creds.state.instanceId)).toBe(2);
    const honest = next(creds, first, keyPem);
    const again = await post(plane, caPem, (await renewalBody(honest)).body);
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect(again.body.generation).toBe(3);
  });

  it("a proof by a copied credential for a superseded generation locks that instance (only it) and raises an alert, as over mTLS", async () => {
    const creds = await freshAgent("proof-copied");
    const bystander = await freshAgent("proof-copied-bystander");
    // The copy is taken at generation 1; the original renews twice (1 → 2 → 3).
    const copy = creds;
    let original = creds;
    for (let i = 0; i < 2; i++) {
      const { body, keyPem } = await renewalBody(original);
      const reply = await post(plane, caPem, body);
      expect(reply.status).toBe(200);
      original = next(original, reply, keyPem);
    }
    const stolen = await post(plane, caPem, (await renewalBody(copy)).body);
    expect(stolen.status).toBe(403);
    expect(stolen.body.error.code).toBe("LOCKED");
    expect(stolen.body.error.message).toContain("credentials copied");
    // The instance is locked for everyone holding it, the original included.
    const after = await post(plane, caPem, (await renewalBody(original)).body);
    expect(after.body.error.code).toBe("LOCKED");
    const alerts = (await events(plane, "identity.copy_detected")).filter((e) => e.target.instance === creds.state.instanceId);
    expect(alerts).toHaveLength(1);
    expect(alerts[0].details).toMatchObject({ alert: true, presentedGeneration: 1, currentGeneration: 3 });
    expect((await post(plane, caPem, (await renewalBody(bystander)).body)).status).toBe(200);
  });

  it("of two renewals racing with one generation, exactly one wins the compare-and-set; the other writes nothing", async () => {
    const creds = await freshAgent("proof-race");
    const [a, b] = await Promise.all([renewalBody(creds), renewalBody(creds)]);
    const replies = await Promise.all([post(plane, caPem, a.body), post(plane, caPem, b.body)]);
    expect(replies.map((r) => r.status).sort()).toEqual([200, 401]);
    const lost = replies.find((r) => r.status === 401)!;
    expect(lost.body.error.code).toBe("PROOF_INVALID");
    expect(lost.body.error.message).toContain("concurrent renewal");
    expect(await generationOf(plane, creds.state.instanceId)).toBe(2);
    const issued = await plane.context.store.db.selectFrom("issued_svids").select("serial").where("instance_id", "=", creds.state.instanceId).execute();
    expect(issued).toHaveLength(2); // the join's and the winner's
  });

  it("refuses a proof that names another generation than the presented SVID carries", async () => {
    const creds = await freshAgent("proof-generation");
    const reply = await post(plane, caPem, (await renewalBody(creds, { generation: 2 })).body);
    expect(reply.status).toBe(401);
    expect(reply.body.error.message).toContain("generation 2");
  });

  it("refuses a locked current SVID, by serial and by agent", async () => {
    const creds = await freshAgent("proof-locked");
    const lock = await mandate("locks", "add", "--serial", creds.state.serial, "--reason", "incident 7", "--ttl", "1h", "--data-dir", plane.dataDir);
    expect(lock.code, lock.stderr).toBe(0);
    await plane.context.locks.refresh(true);
    const reply = await post(plane, caPem, (await renewalBody(creds)).body);
    expect(reply.status).toBe(403);
    expect(reply.body.error.code).toBe("LOCKED");
    expect(reply.body.error.message).toContain("incident 7");
  });

  it("refuses a wrong audience, an iat outside the window (saying the clock is the cause), and another instance", async () => {
    const creds = await freshAgent("proof-claims");
    const audience = await post(plane, caPem, (await renewalBody(creds, { aud: "spiffe://other.example/mandate/server" })).body);
    expect(audience.status).toBe(401);
    expect(audience.body.error.message).toContain("aud must be");
    for (const skew of [-600, 120]) {
      const late = await post(plane, caPem, (await renewalBody(creds, { iat: Math.floor(Date.now() / 1000) + skew })).body);
      expect(late.status).toBe(401);
      expect(late.body.error.code).toBe("PROOF_INVALID");
      expect(late.body.error.details.reason).toBe("clock");
    }
    const instance = await post(plane, caPem, (await renewalBody(creds, { instance: "inst-0000000000000000" })).body);
    expect(instance.body.error.message).toContain("another instance");
    const sub = await post(plane, caPem, (await renewalBody(creds, { sub: "spiffe://mandate.local/agent/someone-else" })).body);
    expect(sub.body.error.message).toContain("sub");
    expect(await generationOf(plane, creds.state.instanceId)).toBe(1);
  });

  it("refuses alg none and HS256 (keyed with the certificate's public key) outright", async () => {
    const creds = await freshAgent("proof-alg");
    const { body } = await renewalBody(creds);
    const [, payload] = body.proof.split(".");
    const x5c = [pemDecodeAll(creds.svidPem)[0]!.toString("base64")];
    const header = (alg: string) => Buffer.from(JSON.stringify({ alg, typ: RENEWAL_PROOF_TYPE, x5c })).toString("base64url");
    const none = `${header("none")}.${payload}.`;
    const hsInput = `${header("HS256")}.${payload}`;
    const spki = createPrivateKey(creds.keyPem).export({ type: "pkcs8", format: "der" });
    const hs256 = `${hsInput}.${createHmac("sha256", spki).update(hsInput).digest("base64url")}`;
    for (const proof of [none, hs256]) {
      const reply = await post(plane, caPem, { csr: body.csr, proof });
      expect(reply.status).toBe(401);
      expect(reply.body.error.code).toBe("PROOF_INVALID");
    }
    // ES256 over the right bytes but DER-encoded, as a confused client might send it.
    const [h, p] = body.proof.split(".");
    const der = sign("sha256", Buffer.from(`${h}.${p}`), createPrivateKey(creds.keyPem)).toString("base64url");
    expect((await post(plane, caPem, { csr: body.csr, proof: `${h}.${p}.${der}` })).body.error.code).toBe("PROOF_INVALID");
    expect(await generationOf(plane, creds.state.instanceId)).toBe(1);
  });

  it("refuses malformed bodies with clear codes", async () => {
    const creds = await freshAgent("proof-malformed");
    const { body } = await renewalBody(creds);
    const cases: [string | object, number, string][] = [
      ["{", 400, "MALFORMED_REQUEST"],
      [{}, 400, "MALFORMED_REQUEST"],
      [{ csr: body.csr }, 400, "MALFORMED_REQUEST"],
      [{ ...body, extra: 1 }, 400, "MALFORMED_REQUEST"],
      [{ csr: body.csr, proof: 42 }, 400, "MALFORMED_REQUEST"],
      [{ csr: body.csr, proof: "x".repeat(9000) }, 400, "MALFORMED_REQUEST"],
      [{ csr: body.csr, proof: "a.b.c" }, 401, "PROOF_INVALID"],
      [{ csr: body.csr, proof: body.proof.slice(0, -3) }, 401, "PROOF_INVALID"],
      [{ csr: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", proof: body.proof }, 400, "INVALID_CSR"],
      [{ csr: "garbage", proof: body.proof }, 400, "INVALID_CSR"],
      ["x".repeat(70_000), 413, "BODY_TOO_LARGE"],
    ];
    for (const [input, status, code] of cases) {
      const reply = await post(plane, caPem, input);
      expect({ status: reply.status, code: reply.body.error?.code }, JSON.stringify(input).slice(0, 80)).toEqual({ status, code });
    }
    expect(await generationOf(plane, creds.state.instanceId)).toBe(1);
  });

  it("the daemon renews with a proof by default, and over mTLS when its clock is outside the proof's window or its files predate generations", async () => {
    const work = await tempDir();
    try {
      const joined = await joinTestAgent(plane, "proof-daemon");
      const dir = joined.credentialDir;
      expect((await mandate("daemon", "--out", dir, "--oneshot")).code).toBe(0);
      const byDaemon = (await events(plane, "identity.renew")).filter((e) => e.actor.agent === "proof-daemon" && e.code === "OK");
      expect(byDaemon.map((e) => e.details.method)).toEqual(["proof"]);

      const logs: string[] = [];
      const skewed = new SvidRenewer((m) => logs.push(m), () => Date.now() + 10 * 60_000);
      try {
        const state = await skewed.renew(dir, (await readCredentials(dir))!);
        expect(state.generation).toBe(3);
      } finally {
        skewed.close();
      }
      expect(logs.join("\n")).toContain("check the agent's clock");

      // Files written before generations were recorded: mTLS once, then proofs.
      const old = join(work, "old");
      await cp(dir, old, { recursive: true });
      const credentials = (await readCredentials(old))!;
      const { generation: _g, ...stateWithout } = credentials.state;
      const { writeFile } = await import("node:fs/promises");
      await writeFile(join(old, "mandate-agent.json"), JSON.stringify(stateWithout));
      expect((await mandate("daemon", "--out", old, "--oneshot")).code).toBe(0);
      expect((await mandate("daemon", "--out", old, "--oneshot")).code).toBe(0);
      const methods = (await events(plane, "identity.renew")).filter((e) => e.actor.agent === "proof-daemon" && e.code === "OK").map((e) => e.details.method);
      expect(methods).toEqual(["proof", "mtls", "mtls", "proof"]);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
});

describe("renewal against a control plane without the proof endpoint", () => {
  it("falls back to mTLS after the 404, says so once, and keeps using mTLS", async () => {
    const plane = await startTestControlPlane();
    try {
      // An older control plane: the proof route does not exist there.
      const server = plane.app.server;
      const [fastifyListener] = server.listeners("request") as ((req: unknown, res: unknown) => void)[];
      server.removeAllListeners("request");
      let proofAttempts = 0;
      server.on("request", (req: { url?: string }, res: { writeHead(s: number, h: object): void; end(b: string): void }) => {
        if (req.url === PATH) {
          proofAttempts++;
          res.writeHead(404, { "content-type": "application/json" });
          res.end(JSON.stringify({ error: { code: "NOT_FOUND", message: `no route POST ${PATH}` } }));
          return;
        }
        fastifyListener!(req, res);
      });
      const joined = await joinTestAgent(plane, "proof-old-server");
      const logs: string[] = [];
      const renewer = new SvidRenewer((m) => logs.push(m));
      try {
        const first = await renewer.renew(joined.credentialDir, (await readCredentials(joined.credentialDir))!);
        const second = await renewer.renew(joined.credentialDir, (await readCredentials(joined.credentialDir))!);
        expect(second.generation).toBe(first.generation! + 1);
      } finally {
        renewer.close();
      }
      expect(proofAttempts).toBe(1);
      expect(logs.filter((l) => l.includes("does not accept renewal proofs"))).toHaveLength(1);
      const methods = (await events(plane, "identity.renew")).filter((e) => e.code === "OK").map((e) => e.details.method);
      expect(methods).toEqual(["mtls", "mtls"]);
    } finally {
      await plane.close();
    }
  });
});

describe.skipIf(!postgres)("renewal by proof on two control planes sharing one PostgreSQL", () => {
  it("renews on either with the SVID the other issued, and a generation raced on both is won on one only", async () => {
    const db = await freshPostgresDatabase(postgres!);
    const [a, b] = await Promise.all([
      startTestControlPlane({ storage: db.url, trustDomain: "proof.test" }),
      startTestControlPlane({ storage: db.url, trustDomain: "proof.test" }),
    ]);
    try {
      let creds = (await joinTestAgent(a, "proof-cluster")).credentials;
      const caPem = a.context.authority.x509AuthoritiesPem();
      for (const plane of [b, a, b]) {
        const { body, keyPem } = await renewalBody(creds);
        const reply = await post(plane, caPem, body);
        expect(reply.status, JSON.stringify(reply.body)).toBe(200);
        creds = next(creds, reply, keyPem);
      }
      expect(await generationOf(a, creds.state.instanceId)).toBe(4);
      const [one, two] = await Promise.all([renewalBody(creds), renewalBody(creds)]);
      const replies = await Promise.all([post(a, caPem, one.body), post(b, caPem, two.body)]);
      const statuses = replies.map((r) => r.status).sort();
      // Either both read generation 4 and one loses the compare-and-set, or the second read the first's commit and
      // renewed as a retry of a lost response (the rule mTLS renewals have): never two certificates for generation 5.
      const generations = replies.filter((r) => r.status === 200).map((r) => r.body.generation);
      expect(new Set(generations).size).toBe(generations.length);
      if (statuses[1] === 401) expect(replies.find((r) => r.status === 401)!.body.error.message).toContain("concurrent renewal");
      expect(statuses[0]).toBe(200);
    } finally {
      await a.close();
      await b.close();
      await db.drop();
    }
  });
});

describe("renewal by proof with an expired current SVID", () => {
  it("is refused as over mTLS", async () => {
    const plane = await startTestControlPlane({ svidTtlMs: 1500 });
    try {
      const creds = (await joinTestAgent(plane, "proof-expired")).credentials;
      await new Promise((r) => setTimeout(r, 1700));
      const reply = await post(plane, plane.context.authority.x509AuthoritiesPem(), (await renewalBody(creds)).body);
      expect(reply.status).toBe(401);
      expect(reply.body.error.code).toBe("UNAUTHENTICATED");
      expect(reply.body.error.message).toContain("expired");
    } finally {
      await plane.close();
    }
  });
});
