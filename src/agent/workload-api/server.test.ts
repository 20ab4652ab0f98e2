import { X509Certificate, createPrivateKey, generateKeyPairSync, randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { isMandateError } from "../../errors/index.js";
import { type GeneratedAuthority, generateIntermediateAuthority, generateRootAuthority } from "../../identity/authority-keys.js";
import { buildSpiffeBundle, parseSpiffeBundleText } from "../../identity/bundle.js";
import { createJwtSvidSigner, verifyJwtSvid } from "../../identity/jwt-svid.js";
import { createX509SvidBuilder } from "../../identity/x509-svid-builder.js";
import { loadWorkloadApi } from "./proto.js";
import {
  type WorkloadApiServer,
  type WorkloadAttestor,
  type WorkloadDenial,
  type WorkloadIdentitySnapshot,
  type WorkloadIdentitySource,
  type WorkloadX509Svid,
  startWorkloadApiServer,
} from "./server.js";
import { fromProtoStruct } from "./struct.js";

const TD = "example.org";
const WORKLOAD = `spiffe://${TD}/workload/api`;
const { client: WorkloadClient } = loadWorkloadApi();

let root: GeneratedAuthority;
let intermediate: GeneratedAuthority;
let fedRoot: GeneratedAuthority;
let jwtKey: ReturnType<typeof generateKeyPairSync>;
let jwtBundleJson: Buffer;

beforeAll(async () => {
  const now = Date.now();
  root = await generateRootAuthority(TD, new Date(now - 60_000), new Date(now + 86_400_000));
  intermediate = await generateIntermediateAuthority(TD, root, new Date(now - 60_000), new Date(now + 86_400_000));
  fedRoot = await generateRootAuthority("fed.org", new Date(now - 60_000), new Date(now + 86_400_000));
  jwtKey = generateKeyPairSync("ec", { namedCurve: "P-256" });
  jwtBundleJson = Buffer.from(
    JSON.stringify(buildSpiffeBundle({ x509Authorities: [], jwtAuthorities: [{ kid: "k1", publicKey: jwtKey.publicKey }], sequence: 1, refreshHintSeconds: 300 })),
  );
});

async function issueSvid(spiffeId: string, hint?: string): Promise<WorkloadX509Svid> {
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const now = Date.now();
  const leaf = await createX509SvidBuilder(intermediate).buildX509Svid({
    spiffeId,
    spkiDer: publicKey.export({ type: "spki", format: "der" }),
    keyAlgorithm: "ec-p256",
    serial: randomBytes(16),
    notBefore: new Date(now - 1000),
    notAfter: new Date(now + 3_600_000),
  });
  return {
    spiffeId,
    certChainDer: [leaf, intermediate.certDer],
    keyPkcs8Der: privateKey.export({ type: "pkcs8", format: "der" }),
    bundleDer: [root.certDer],
    ...(hint === undefined ? {} : { hint }),
  };
}

async function snapshotWith(svids: WorkloadX509Svid[]): Promise<WorkloadIdentitySnapshot> {
  return {
    trustDomain: TD,
    bundleDer: [root.certDer],
    svids,
    federatedBundles: new Map([["fed.org", [fedRoot.certDer]]]),
    jwtBundles: new Map([[TD, jwtBundleJson]]),
  };
}

/** An in-memory identity source whose snapshot the test replaces at will. */
class FakeSource implements WorkloadIdentitySource {
  snapshot: WorkloadIdentitySnapshot | undefined;
  readonly listeners = new Set<() => void>();
  private readonly signer = createJwtSvidSigner({ kid: "k1", privateKey: jwtKey.privateKey as never });

  current() {
    return this.snapshot;
  }
  set(snapshot: WorkloadIdentitySnapshot | undefined) {
    this.snapshot = snapshot;
    for (const listener of [...this.listeners]) listener();
  }
  onChange(listener: () => void) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  mintJwtSvid(spiffeId: string, audience: string[]) {
    return this.signer.mintJwtSvid({ spiffeId, audience, ttlSeconds: 300 });
  }
  async validateJwtSvid(token: string, audience: string) {
    const verified = await verifyJwtSvid(token, {
      audience,
      jwtBundleFor: (td) => (td === TD ? parseSpiffeBundleText(jwtBundleJson.toString(), TD).jwtBundle : undefined),
    });
    return { spiffeId: verified.spiffeId.uri, claims: verified.claims as Record<string, unknown> };
  }
}

/** Splits back-to-back DER certificates by reading each outer SEQUENCE's length. */
function splitDer(bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const first = bytes[offset + 1]!;
    let length = first;
    let header = 2;
    if (first & 0x80) {
      const n = first & 0x7f;
      length = bytes.readUIntBE(offset + 2, n);
      header = 2 + n;
    }
    out.push(bytes.subarray(offset, offset + header + length));
    offset += header + length;
  }
  return out;
}

const dirs: string[] = [];
const servers: WorkloadApiServer[] = [];
const clients: grpc.Client[] = [];

function socketDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "wl-api-"));
  dirs.push(dir);
  return dir;
}

/** Grants every offered identity: these tests are about the contract; attestation has its own. */
const allowAll: WorkloadAttestor = { attest: async (_caller, svids) => ({ allowed: svids.map((svid) => svid.spiffeId), reasons: [] }) };

async function start(source: WorkloadIdentitySource, extra: Partial<Parameters<typeof startWorkloadApiServer>[0]> = {}) {
  const server = await startWorkloadApiServer({ socketPath: join(socketDir(), "agent.sock"), source, attestor: allowAll, ...extra });
  servers.push(server);
  const client = new WorkloadClient(server.endpoint, grpc.credentials.createInsecure()) as grpc.Client & Record<string, any>;
  clients.push(client);
  return { server, client };
}

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await Promise.all(servers.splice(0).map((server) => server.close()));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function header(): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set("workload.spiffe.io", "true");
  return md;
}

/** Reads a server stream message by message. */
function reader(stream: grpc.ClientReadableStream<any>) {
  const queue: any[] = [];
  const waiters: ((value: any) => void)[] = [];
  let failure: grpc.ServiceError | undefined;
  let ended = false;
  stream.on("data", (message) => (waiters.length ? waiters.shift()!(message) : queue.push(message)));
  stream.on("error", (error: grpc.ServiceError) => {
    failure = error;
    for (const waiter of waiters.splice(0)) waiter(undefined);
  });
  stream.on("end", () => {
    ended = true;
    for (const waiter of waiters.splice(0)) waiter(undefined);
  });
  return {
    async next(): Promise<any> {
      if (queue.length) return queue.shift();
      if (failure || ended) return undefined;
      return new Promise((resolve) => waiters.push(resolve));
    },
    async error(): Promise<grpc.ServiceError> {
      while (!failure) {
        if (ended) throw new Error("stream ended without an error");
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      return failure;
    },
  };
}

function unary(client: any, method: string, request: object, metadata = header()): Promise<any> {
  return new Promise((resolve, reject) => client[method](request, metadata, (error: grpc.ServiceError | null, response: any) => (error ? reject(error) : resolve(response))));
}

async function unaryError(client: any, method: string, request: object, metadata = header()): Promise<grpc.ServiceError> {
  try {
    await unary(client, method, request, metadata);
  } catch (error) {
    return error as grpc.ServiceError;
  }
  throw new Error(`${method} unexpectedly succeeded`);
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe("Workload API contract", () => {
  it("uses the standard's method paths and streaming shapes", () => {
    const service = WorkloadClient.service;
    expect(Object.values(service).map((m) => [m.path, m.requestStream, m.responseStream])).toEqual([
      ["/SpiffeWorkloadAPI/FetchX509SVID", false, true],
      ["/SpiffeWorkloadAPI/FetchX509Bundles", false, true],
      ["/SpiffeWorkloadAPI/FetchJWTSVID", false, false],
      ["/SpiffeWorkloadAPI/FetchJWTBundles", false, true],
      ["/SpiffeWorkloadAPI/ValidateJWTSVID", false, false],
    ]);
  });

  it("encodes field numbers exactly as the standard (checked on the wire)", () => {
    const bytes = WorkloadClient.service.FetchJWTSVID!.requestSerialize({ audience: ["a"], spiffe_id: "s" });
    // field 1 (audience, length-delimited) = 0x0a, field 2 (spiffe_id) = 0x12
    expect([...bytes]).toEqual([0x0a, 1, 0x61, 0x12, 1, 0x73]);
    const svid = WorkloadClient.service.FetchX509SVID!.responseSerialize({
      svids: [{ spiffe_id: "i", x509_svid: Buffer.from("c"), x509_svid_key: Buffer.from("k"), bundle: Buffer.from("b"), hint: "h" }],
    });
    expect([...svid]).toEqual([0x0a, 15, 0x0a, 1, 0x69, 0x12, 1, 0x63, 0x1a, 1, 0x6b, 0x22, 1, 0x62, 0x2a, 1, 0x68]);
    const validate = WorkloadClient.service.ValidateJWTSVID!.requestSerialize({ audience: "a", svid: "t" });
    expect([...validate]).toEqual([0x0a, 1, 0x61, 0x12, 1, 0x74]);
  });
});

describe("startWorkloadApiServer", () => {
  it("streams the X509-SVID immediately and pushes a full snapshot on every rotation; cancel cleans up", async () => {
    const source = new FakeSource();
    const first = await issueSvid(WORKLOAD, "default");
    source.set(await snapshotWith([first]));
    const { server, client } = await start(source);

    const call = client.FetchX509SVID({}, header());
    const stream = reader(call);
    const message = await stream.next();
    expect(message.svids).toHaveLength(1);
    const svid = message.svids[0];
    expect(svid.spiffe_id).toBe(WORKLOAD);
    expect(svid.hint).toBe("default");
    const chain = splitDer(svid.x509_svid);
    expect(chain).toHaveLength(2);
    const leaf = new X509Certificate(chain[0]!);
    expect(leaf.subjectAltName).toBe(`URI:${WORKLOAD}`);
    expect(chain[1]!.equals(intermediate.certDer)).toBe(true);
    expect(leaf.checkPrivateKey(createPrivateKey({ key: svid.x509_svid_key, format: "der", type: "pkcs8" }))).toBe(true);
    expect(leaf.verify(new X509Certificate(chain[1]!).publicKey)).toBe(true);
    expect(Buffer.compare(svid.bundle, root.certDer)).toBe(0);
    expect(Object.keys(message.federated_bundles)).toEqual(["spiffe://fed.org"]);

    const rotated = await issueSvid(WORKLOAD, "default");
    source.set(await snapshotWith([rotated]));
    const next = await stream.next();
    expect(next.svids).toHaveLength(1);
    expect(Buffer.compare(next.svids[0].x509_svid, Buffer.concat(rotated.certChainDer))).toBe(0);
    expect(Buffer.compare(next.svids[0].x509_svid_key, rotated.keyPkcs8Der)).toBe(0);

    expect(source.listeners.size).toBe(1);
    expect(server.activeStreams()).toBe(1);
    call.cancel();
    await until(() => source.listeners.size === 0 && server.activeStreams() === 0, "the stream to be cleaned up");
  });

  it("ends the X509-SVID stream with PERMISSION_DENIED when every identity is lost", async () => {
    const source = new FakeSource();
    source.set(await snapshotWith([await issueSvid(WORKLOAD)]));
    const { client } = await start(source);
    const stream = reader(client.FetchX509SVID({}, header()));
    expect((await stream.next()).svids).toHaveLength(1);
    source.set(await snapshotWith([]));
    expect((await stream.error()).code).toBe(grpc.status.PERMISSION_DENIED);
    await until(() => source.listeners.size === 0, "the listener to be removed");
  });

  it("streams X.509 bundles keyed spiffe://<td>, local domain included, and pushes bundle changes", async () => {
    const source = new FakeSource();
    source.set(await snapshotWith([await issueSvid(WORKLOAD)]));
    const { client } = await start(source);
    const stream = reader(client.FetchX509Bundles({}, header()));
    const message = await stream.next();
    expect(Object.keys(message.bundles).sort()).toEqual(["spiffe://example.org", "spiffe://fed.org"]);
    expect(Buffer.compare(message.bundles["spiffe://example.org"], root.certDer)).toBe(0);
    expect(Buffer.compare(message.bundles["spiffe://fed.org"], fedRoot.certDer)).toBe(0);

    const withoutFederation = { ...(await snapshotWith([await issueSvid(WORKLOAD)])), federatedBundles: new Map() };
    source.set(withoutFederation);
    expect(Object.keys((await stream.next()).bundles)).toEqual(["spiffe://example.org"]);
  });

  it("streams JWT bundles as JWKS bytes keyed spiffe://<td>", async () => {
    const source = new FakeSource();
    source.set(await snapshotWith([await issueSvid(WORKLOAD)]));
    const { client } = await start(source);
    const message = await reader(client.FetchJWTBundles({}, header())).next();
    expect(Object.keys(message.bundles)).toEqual(["spiffe://example.org"]);
    const jwks = JSON.parse(message.bundles["spiffe://example.org"].toString());
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).toMatchObject({ use: "jwt-svid", kid: "k1", kty: "EC" });
  });

  it("mints a JWT-SVID and validates it through ValidateJWTSVID", async () => {
    const source = new FakeSource();
    source.set(await snapshotWith([await issueSvid(WORKLOAD, "main")]));
    const { client } = await start(source);

    expect((await unaryError(client, "FetchJWTSVID", { audience: [] })).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((await unaryError(client, "FetchJWTSVID", { audience: ["x"], spiffe_id: `spiffe://${TD}/someone-else` })).code).toBe(grpc.status.PERMISSION_DENIED);

    const response = await unary(client, "FetchJWTSVID", { audience: ["spiffe://example.org/db"] });
    expect(response.svids).toHaveLength(1);
    expect(response.svids[0].spiffe_id).toBe(WORKLOAD);
    expect(response.svids[0].hint).toBe("main");
    const token: string = response.svids[0].svid;
    expect(token.split(".")).toHaveLength(3);

    const validated = await unary(client, "ValidateJWTSVID", { audience: "spiffe://example.org/db", svid: token });
    expect(validated.spiffe_id).toBe(WORKLOAD);
    const claims = fromProtoStruct(validated.claims);
    expect(claims.sub).toBe(WORKLOAD);
    expect(claims.aud).toEqual(["spiffe://example.org/db"]);
    expect(typeof claims.exp).toBe("number");

    expect((await unaryError(client, "ValidateJWTSVID", { audience: "someone-else", svid: token })).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((await unaryError(client, "ValidateJWTSVID", { audience: "", svid: token })).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((await unaryError(client, "ValidateJWTSVID", { audience: "spiffe://example.org/db", svid: "" })).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((await unaryError(client, "ValidateJWTSVID", { audience: "spiffe://example.org/db", svid: "not.a.jwt" })).code).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it("rejects every RPC without the workload.spiffe.io: true header with INVALID_ARGUMENT", async () => {
    const source = new FakeSource();
    source.set(await snapshotWith([await issueSvid(WORKLOAD)]));
    const { client } = await start(source);
    const wrong = new grpc.Metadata();
    wrong.set("workload.spiffe.io", "false");
    for (const metadata of [new grpc.Metadata(), wrong]) {
      for (const method of ["FetchX509SVID", "FetchX509Bundles", "FetchJWTBundles"]) {
        const error = await reader(client[method]({}, metadata)).error();
        expect(error.code, method).toBe(grpc.status.INVALID_ARGUMENT);
      }
      expect((await unaryError(client, "FetchJWTSVID", { audience: ["a"] }, metadata)).code).toBe(grpc.status.INVALID_ARGUMENT);
      expect((await unaryError(client, "ValidateJWTSVID", { audience: "a", svid: "x" }, metadata)).code).toBe(grpc.status.INVALID_ARGUMENT);
    }
    expect(source.listeners.size).toBe(0);
  });

  it("answers UNAVAILABLE while the agent is still initializing", async () => {
    const source = new FakeSource();
    const { client } = await start(source);
    for (const method of ["FetchX509SVID", "FetchX509Bundles", "FetchJWTBundles"]) {
      expect((await reader(client[method]({}, header())).error()).code, method).toBe(grpc.status.UNAVAILABLE);
    }
    expect((await unaryError(client, "FetchJWTSVID", { audience: ["a"] })).code).toBe(grpc.status.UNAVAILABLE);
    expect((await unaryError(client, "ValidateJWTSVID", { audience: "a", svid: "x" })).code).toBe(grpc.status.UNAVAILABLE);

    source.set(await snapshotWith([await issueSvid(WORKLOAD)]));
    expect((await reader(client.FetchX509SVID({}, header())).next()).svids).toHaveLength(1);
  });

  it("answers UNIMPLEMENTED for methods outside the contract", async () => {
    const source = new FakeSource();
    source.set(await snapshotWith([await issueSvid(WORKLOAD)]));
    const { client } = await start(source);
    const identity = (value: Buffer) => value;
    const error = await new Promise<grpc.ServiceError>((resolve) =>
      client.makeUnaryRequest("/SpiffeWorkloadAPI/FetchWITSVID", identity, identity, Buffer.alloc(0), header(), (err: grpc.ServiceError | null) => resolve(err!)),
    );
    expect(error.code).toBe(grpc.status.UNIMPLEMENTED);
  });

  it("hands the attestor the connecting process's kernel credentials, serves only what it allows, records refusals, and fails closed when it throws", async () => {
    const source = new FakeSource();
    const other = `spiffe://${TD}/workload/other`;
    source.set(await snapshotWith([await issueSvid(WORKLOAD), await issueSvid(other)]));
    let verdict: (svids: readonly WorkloadX509Svid[]) => string[] = () => [];
    const seen: { pid: number; uid: number }[] = [];
    const denials: WorkloadDenial[] = [];
    const attestor: WorkloadAttestor = {
      attest: async (caller, svids) => {
        seen.push({ pid: caller.pid, uid: caller.uid });
        return { allowed: verdict(svids), reasons: ["no registration matches"], facts: { uid: caller.uid } };
      },
    };
    const { client } = await start(source, { attestor, onDenied: (denial) => denials.push(denial) });
    expect((await reader(client.FetchX509SVID({}, header())).error()).code).toBe(grpc.status.PERMISSION_DENIED);
    expect((await unaryError(client, "FetchJWTSVID", { audience: ["a"] })).code).toBe(grpc.status.PERMISSION_DENIED);
    expect((await reader(client.FetchX509Bundles({}, header())).error()).code).toBe(grpc.status.PERMISSION_DENIED);
    // The client runs in this process: SO_PEERCRED names this very process.
    expect(seen[0]).toEqual({ pid: process.pid, uid: process.getuid!() });
    expect(denials.map((d) => d.rpc)).toEqual(["FetchX509SVID", "FetchJWTSVID", "FetchX509Bundles"]);
    expect(denials[0]).toMatchObject({ caller: { pid: process.pid }, reasons: ["no registration matches"] });

    verdict = () => {
      throw new Error("proc unreadable");
    };
    const thrown = await unaryError(client, "FetchJWTSVID", { audience: ["a"] });
    expect(thrown.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(thrown.details).not.toMatch(/proc unreadable/);
    expect(denials).toHaveLength(4);

    verdict = () => [other];
    const minted = await unary(client, "FetchJWTSVID", { audience: ["a"] });
    expect(minted.svids.map((s: { spiffe_id: string }) => s.spiffe_id)).toEqual([other]);
    const stream = reader(client.FetchX509SVID({}, header()));
    expect((await stream.next()).svids.map((s: { spiffe_id: string }) => s.spiffe_id)).toEqual([other]);
    // A plain rotation reuses the stream's attestation…
    const attested = seen.length;
    source.set(await snapshotWith([await issueSvid(WORKLOAD), await issueSvid(other)]));
    expect((await stream.next()).svids.map((s: { spiffe_id: string }) => s.spiffe_id)).toEqual([other]);
    expect(seen.length).toBe(attested);
    // …a change of registrations re-attests, and losing the match ends the stream.
    verdict = () => [];
    source.set(await snapshotWith([await issueSvid(WORKLOAD), { ...(await issueSvid(other)), selectors: ["unix:uid:4242"] }]));
    expect((await stream.error()).code).toBe(grpc.status.PERMISSION_DENIED);
    expect(seen.length).toBe(attested + 1);
  });

  it("serves 200 concurrent FetchX509SVID streams their first message and a rotation", async () => {
    const source = new FakeSource();
    source.set(await snapshotWith([await issueSvid(WORKLOAD)]));
    const { server, client } = await start(source);
    const streams = Array.from({ length: 200 }, () => reader(client.FetchX509SVID({}, header())));
    const firsts = await Promise.all(streams.map((stream) => stream.next()));
    expect(firsts.every((message) => message?.svids?.[0]?.spiffe_id === WORKLOAD)).toBe(true);
    await until(() => server.activeStreams() === 200, "all streams to register");

    const rotated = await issueSvid(WORKLOAD);
    source.set(await snapshotWith([rotated]));
    const seconds = await Promise.all(streams.map((stream) => stream.next()));
    const expected = Buffer.concat(rotated.certChainDer);
    expect(seconds.every((message) => Buffer.compare(message.svids[0].x509_svid, expected) === 0)).toBe(true);
  });

  it("coalesces rotations for a client that is not reading, then delivers the latest snapshot", async () => {
    const source = new FakeSource();
    const svids = await Promise.all(Array.from({ length: 4 }, (_, i) => issueSvid(`${WORKLOAD}/${i}`)));
    source.set(await snapshotWith([svids[0]!]));
    const { client } = await start(source);
    const call = client.FetchX509SVID({}, header());
    const received: any[] = [];
    call.on("data", (message: any) => received.push(message));
    call.on("error", () => {});
    await until(() => received.length === 1, "the first message");
    call.pause();
    // Large snapshots so flow control pushes back long before all rotations are written.
    const big = await snapshotWith(Array.from({ length: 50 }, (_, i) => svids[i % 3]!));
    for (let i = 0; i < 3000; i++) source.set({ ...big, svids: [...big.svids] });
    const latest = await snapshotWith([svids[3]!]);
    source.set(latest);
    call.resume();
    await until(() => received.at(-1)?.svids?.[0]?.spiffe_id === `${WORKLOAD}/3`, "the latest snapshot");
    // Without coalescing every one of the 3001 snapshots would be queued in memory and delivered.
    expect(received.length).toBeLessThan(100);
    call.cancel();
  });

  it("survives a client that writes garbage on the socket", async () => {
    const source = new FakeSource();
    source.set(await snapshotWith([await issueSvid(WORKLOAD)]));
    const { server, client } = await start(source);
    const payloads = [
      randomBytes(4096),
      Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
      // A valid HTTP/2 preface followed by a frame with an absurd length and unknown type.
      Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Buffer.from([0xff, 0xff, 0xff, 0x99, 0xff, 0x7f, 0xff, 0xff, 0xff]), randomBytes(512)]),
    ];
    for (const payload of payloads) {
      await new Promise<void>((resolve) => {
        const socket = connect(server.socketPath, () => socket.end(payload));
        socket.on("error", () => resolve());
        socket.on("close", () => resolve());
        socket.resume();
        setTimeout(() => {
          socket.destroy();
          resolve();
        }, 1000);
      });
    }
    expect((await reader(client.FetchX509SVID({}, header())).next()).svids[0].spiffe_id).toBe(WORKLOAD);
  });

  it("creates the socket with mode 0666 (attestation decides), replaces a stale socket, and refuses a live one or a regular file", async () => {
    const source = new FakeSource();
    const dir = socketDir();
    const socketPath = join(dir, "agent.sock");

    // A socket file left behind by a crashed daemon: bound elsewhere, moved into place, listener gone.
    const stale = createServer();
    await new Promise<void>((resolve) => stale.listen(join(dir, "old.sock"), resolve));
    renameSync(join(dir, "old.sock"), socketPath);
    await new Promise<void>((resolve) => stale.close(() => resolve()));
    expect(statSync(socketPath).isSocket()).toBe(true);

    const server = await startWorkloadApiServer({ socketPath, source, attestor: allowAll });
    servers.push(server);
    expect(server.endpoint).toBe(`unix://${socketPath}`);
    expect(statSync(socketPath).mode & 0o777).toBe(0o666);

    await expect(startWorkloadApiServer({ socketPath, source, attestor: allowAll })).rejects.toSatisfy((error) => isMandateError(error, "ALREADY_EXISTS"));
    const file = join(dir, "not-a-socket");
    writeFileSync(file, "keep me");
    await expect(startWorkloadApiServer({ socketPath: file, source, attestor: allowAll })).rejects.toSatisfy((error) => isMandateError(error, "CONFIG_INVALID"));
    expect(existsSync(file)).toBe(true);
    await expect(startWorkloadApiServer({ socketPath: "relative.sock", source, attestor: allowAll })).rejects.toSatisfy((error) => isMandateError(error, "CONFIG_INVALID"));
    chmodSync(dir, 0o700);
  });

  it("close() ends open streams with UNAVAILABLE, stops listening and removes the socket", async () => {
    const source = new FakeSource();
    source.set(await snapshotWith([await issueSvid(WORKLOAD)]));
    const { server, client } = await start(source);
    const stream = reader(client.FetchX509SVID({}, header()));
    await stream.next();
    await server.close();
    expect((await stream.error()).code).toBe(grpc.status.UNAVAILABLE);
    expect(source.listeners.size).toBe(0);
    expect(existsSync(server.socketPath)).toBe(false);
  });
});
