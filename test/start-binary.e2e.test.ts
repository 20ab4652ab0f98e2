import { type ChildProcess, spawn } from "node:child_process";
import { rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { tempDir } from "./helpers/backends.js";

const BIN = fileURLToPath(new URL("../bin/mandate.js", import.meta.url));

/** Starts the real `mandate start` binary and resolves with its banner once it is listening. */
function startBinary(args: string[]): Promise<{ child: ChildProcess; banner: string }> {
  const child = spawn(process.execPath, [BIN, "start", "--listen", "127.0.0.1:0", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  return new Promise((resolve, reject) => {
    let out = "";
    let err = "";
    const timer = setTimeout(() => reject(new Error(`no banner within 20s; stdout=${out} stderr=${err}`)), 20_000);
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes("Press Ctrl-C to stop.")) {
        clearTimeout(timer);
        resolve({ child, banner: out });
      }
    });
    child.stderr!.on("data", (chunk: Buffer) => (err += chunk.toString()));
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code}: ${err}`));
    });
  });
}

function stop(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    child.once("exit", (code) => resolve(code));
    child.kill("SIGTERM");
  });
}

describe("the mandate binary", () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it("creates the trust domain on first start, prints what to do next, and reuses everything on the second start", async () => {
    const dataDir = await tempDir();
    dirs.push(dataDir);
    const first = await startBinary(["--data-dir", dataDir, "--trust-domain", "example.test"]);
    expect(first.banner).toContain("initialized");
    expect(first.banner).toContain("trust domain    example.test (created)");
    expect(first.banner).toMatch(/listening on    https:\/\/127\.0\.0\.1:\d+/);
    expect(first.banner).toContain(join(dataDir, "mandate.db"));
    expect(first.banner).toContain("mandate agents add");
    const pin = /CA pin          (sha256:[0-9a-f]{64})/.exec(first.banner)![1];
    expect(await stop(first.child)).toBe(0);
    expect((await stat(join(dataDir, "admin-identity.json"))).mode & 0o777).toBe(0o600);

    const second = await startBinary(["--data-dir", dataDir]);
    expect(second.banner).toContain("trust domain    example.test (existing)");
    expect(second.banner).toContain(pin);
    expect(await stop(second.child)).toBe(0);
  });

  it("explains a bad flag and exits non-zero", async () => {
    const child = spawn(process.execPath, [BIN, "start", "--listen", "nonsense:port"], { stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    child.stderr.on("data", (c: Buffer) => (err += c.toString()));
    const code = await new Promise((r) => child.once("exit", r));
    expect(code).toBe(1);
    expect(err).toContain("invalid port");
  });

  it("teaches through --help", async () => {
    const child = spawn(process.execPath, [BIN, "--help"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    expect(await new Promise((r) => child.once("exit", r))).toBe(0);
    for (const command of ["start", "agents", "locks", "ca", "daemon", "svid"]) expect(out).toContain(command);
    expect(out).toContain("Getting started");
  });

  it("serves the agent-side commands from the slim program, with the same flags and errors", async () => {
    const run = async (args: string[]) => {
      const child = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      let err = "";
      child.stdout.on("data", (c: Buffer) => (out += c.toString()));
      child.stderr.on("data", (c: Buffer) => (err += c.toString()));
      return { code: await new Promise((r) => child.once("exit", r)), out, err };
    };
    const help = await run(["daemon", "--help"]);
    expect(help.code).toBe(0);
    for (const flag of ["--auth-server", "--join-token", "--out", "--oneshot", "--socket", "--join-method"]) expect(help.out).toContain(flag);
    const svid = await run(["svid", "jwt", "--help"]);
    expect(svid.code).toBe(0);
    expect(svid.out).toContain("--audience");
    const unknown = await run(["daemon", "--no-such-flag"]);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain("unknown option");
  });
});

describe("mandate run", () => {
  it("runs the command with SPIFFE_ENDPOINT_SOCKET set and passes its exit code through", async () => {
    const run = (args: string[]) =>
      new Promise<{ code: number | null; out: string }>((resolve) => {
        const child = spawn(process.execPath, [BIN, "run", ...args], { stdio: ["ignore", "pipe", "pipe"] });
        let out = "";
        child.stdout.on("data", (c: Buffer) => (out += c.toString()));
        child.once("exit", (code) => resolve({ code, out }));
      });
    const printed = await run(["--socket", "/tmp/x/agent.sock", "--", process.execPath, "-e", "console.log(process.env.SPIFFE_ENDPOINT_SOCKET)"]);
    expect(printed.code).toBe(0);
    expect(printed.out.trim()).toBe("unix:///tmp/x/agent.sock");
    const failing = await run(["--socket", "/tmp/x/agent.sock", "--", process.execPath, "-e", "process.exit(7)"]);
    expect(failing.code).toBe(7);
  });
});
