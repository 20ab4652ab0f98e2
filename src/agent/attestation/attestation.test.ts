import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { connect, createServer, type Socket } from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { isMandateError } from "../../errors/index.js";
import { DenialReporter, type DenialReport } from "./denial-reporter.js";
import { peerCredAddon, readPeerCredentials } from "./peer-credentials.js";
import { type ProcessFacts, inspectProcess, parseProcStat } from "./process-facts.js";
import { attestUnixProcess } from "./unix-attestor.js";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

/** A connected unix socket pair; the server side is what the daemon would see. */
async function connectedPair(): Promise<{ server: Socket; client: Socket }> {
  const dir = mkdtempSync(join(tmpdir(), "peercred-"));
  const path = join(dir, "s.sock");
  const listener = createServer();
  await new Promise<void>((resolve) => listener.listen(path, resolve));
  const accepted = new Promise<Socket>((resolve) => listener.once("connection", resolve));
  const client = connect(path);
  const server = await accepted;
  cleanups.push(() => {
    client.destroy();
    server.destroy();
    listener.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { server, client };
}

function facts(overrides: Partial<ProcessFacts> & { hash?: string } = {}): ProcessFacts {
  const { hash, ...rest } = overrides;
  return { pid: 10, uid: 1000, gid: 1000, ppid: 1, path: "/usr/bin/python3.11", sha256: async () => hash, ...rest };
}

describe("peer credentials (native addon)", () => {
  it("reads the kernel's record of the connecting process: this very process", async () => {
    const { server } = await connectedPair();
    const credentials = readPeerCredentials(server);
    expect(credentials).toMatchObject({ pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
    if (credentials.pidfd >= 0) {
      expect(peerCredAddon().pidfdAlive(credentials.pidfd)).toBe(true);
      peerCredAddon().closeFd(credentials.pidfd);
    }
    expect(peerCredAddon().clockTicks()).toBeGreaterThan(0);
  });

  it("refuses a socket without a descriptor rather than guessing", () => {
    expect(() => readPeerCredentials({} as Socket)).toThrow(/no file descriptor/);
    expect(() => peerCredAddon().peerCredentials(-1)).toThrow();
  });
});

describe("inspectProcess", () => {
  it("reads the executable, parent and ids of a live caller", async () => {
    const { server } = await connectedPair();
    const credentials = readPeerCredentials(server);
    const found = await inspectProcess(credentials, Date.now());
    expect(found.path).toBe(process.execPath);
    expect(found.ppid).toBe(process.ppid);
    expect(await found.sha256()).toBe(createHash("sha256").update(await readFile(process.execPath)).digest("hex"));
    if (credentials.pidfd >= 0) peerCredAddon().closeFd(credentials.pidfd);
  });

  it("refuses a pid that belongs to a process started after the connection (pid reuse)", async () => {
    await expect(inspectProcess({ pid: process.pid, uid: 0, gid: 0, pidfd: -1 }, Date.now() - 24 * 3600_000 * 365 * 60)).rejects.toSatisfy((e) => isMandateError(e, "PERMISSION_DENIED"));
  });

  it("refuses a caller that has exited, through its pidfd even if the pid were reused", async () => {
    const dir = mkdtempSync(join(tmpdir(), "peercred-"));
    const path = join(dir, "s.sock");
    const listener = createServer();
    await new Promise<void>((resolve) => listener.listen(path, resolve));
    cleanups.push(() => {
      listener.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const accepted = new Promise<Socket>((resolve) => listener.once("connection", resolve));
    // The child connects, then exits; its socket stays open in the server.
    const child = spawn(process.execPath, ["-e", `const s=require("net").connect(${JSON.stringify(path)},()=>process.exit(0));`], { stdio: "ignore" });
    const socket = await accepted;
    const credentials = readPeerCredentials(socket);
    await new Promise((resolve) => child.once("exit", resolve));
    await expect(inspectProcess(credentials, Date.now())).rejects.toSatisfy((e) => isMandateError(e, "PERMISSION_DENIED"));
    if (credentials.pidfd >= 0) {
      expect(peerCredAddon().pidfdAlive(credentials.pidfd)).toBe(false);
      peerCredAddon().closeFd(credentials.pidfd);
    }
    socket.destroy();
  });

  it("parses /proc/<pid>/stat even when the command name holds spaces and parentheses, and rejects garbage (property)", () => {
    expect(parseProcStat("1234 (a) b (c)) S 77 1234 1234 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 98765 0 0")).toEqual({ ppid: 77, startTicks: 98765 });
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (text) => {
        try {
          const parsed = parseProcStat(text);
          expect(Number.isSafeInteger(parsed.ppid) && Number.isSafeInteger(parsed.startTicks)).toBe(true);
        } catch (error) {
          expect(isMandateError(error, "INTERNAL")).toBe(true);
        }
      }),
    );
  });
});

describe("attestUnixProcess", () => {
  const ID = "spiffe://td/agent/a";

  it("matches only when every selector of a registration holds", async () => {
    expect((await attestUnixProcess(facts(), [{ spiffeId: ID, selectors: ["unix:uid:1000", "unix:gid:1000"] }])).matched).toEqual([ID]);
    const partial = await attestUnixProcess(facts({ gid: 5 }), [{ spiffeId: ID, selectors: ["unix:uid:1000", "unix:gid:1000"] }]);
    expect(partial.matched).toEqual([]);
    expect(partial.mismatches).toEqual([`${ID}: unix:gid:1000 does not match`]);
  });

  it("matches paths exactly or through the selector's symlink, hashes only when asked, and never matches an unknown executable", async () => {
    const hash = "a".repeat(64);
    let hashed = 0;
    const f = { ...facts({ path: process.execPath }), sha256: async () => (hashed++, hash) };
    expect((await attestUnixProcess(f, [{ spiffeId: ID, selectors: [`unix:path:${process.execPath}`] }])).matched).toEqual([ID]);
    expect(hashed).toBe(0);
    // The uid fails first, so the (expensive) hash is never computed.
    expect((await attestUnixProcess(f, [{ spiffeId: ID, selectors: [`unix:sha256:${hash}`, "unix:uid:1"] }])).matched).toEqual([]);
    expect(hashed).toBe(0);
    expect((await attestUnixProcess(f, [{ spiffeId: ID, selectors: [`unix:sha256:${hash}`] }])).matched).toEqual([ID]);
    expect((await attestUnixProcess(facts({ path: undefined }), [{ spiffeId: ID, selectors: ["unix:path:/usr/bin/python3.11"] }])).matched).toEqual([]);
    expect((await attestUnixProcess(facts({ hash: undefined }), [{ spiffeId: ID, selectors: [`unix:sha256:${hash}`] }])).matched).toEqual([]);
  });

  it("resolves user and group names from the host's databases", async () => {
    const user = (await attestUnixProcess(facts({ uid: 0, gid: 0 }), [{ spiffeId: ID, selectors: ["unix:user:root", "unix:group:root"] }])).matched;
    expect(user).toEqual([ID]);
    expect((await attestUnixProcess(facts({ uid: 65534 }), [{ spiffeId: ID, selectors: ["unix:user:root"] }])).matched).toEqual([]);
  });

  it("never matches a registration without selectors", async () => {
    expect((await attestUnixProcess(facts(), [{ spiffeId: ID, selectors: [] }])).matched).toEqual([]);
  });
});

describe("DenialReporter", () => {
  const denial = (pid: number) => ({ rpc: "FetchX509SVID", at: 1, caller: { pid, uid: 7, gid: 7 }, facts: { path: "/bin/x" }, reasons: ["no match"] });

  it("coalesces repeats, bounds what it keeps while the control plane is down, and delivers once it is back", async () => {
    const sent: DenialReport[][] = [];
    let up = false;
    const logs: string[] = [];
    const reporter = new DenialReporter({ send: async (batch) => { if (!up) throw new Error("unreachable"); sent.push(batch); }, log: (m) => logs.push(m), maxPending: 3, flushDelayMs: 60_000 });
    cleanups.push(() => reporter.stop());
    for (let i = 0; i < 1000; i++) reporter.record(denial(1));
    for (let pid = 2; pid < 10; pid++) reporter.record(denial(pid));
    expect(reporter.pendingCount()).toBe(3);
    expect(logs.filter((l) => l.includes("DENIED"))).toHaveLength(3);
    await reporter.flush();
    expect(logs.at(-1)).toMatch(/could not report 3 workload denial\(s\).*will be retried/);
    up = true;
    await reporter.flush();
    expect(reporter.pendingCount()).toBe(0);
    const all = sent.flat();
    expect(all.find((r) => r.pid === 1)?.count).toBe(1000);
    expect(all.at(-1)!.reasons.at(-1)).toMatch(/6 more denial report\(s\) were dropped/);
  });
});
