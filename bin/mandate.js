#!/usr/bin/env node
// Sized before anything touches libuv's threadpool.
import "../dist/src/cli/threadpool.js";

// `mandate … | head` closes the pipe early: that is the reader's choice, not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (error) => {
    if (error.code === "EPIPE") process.exit(process.exitCode ?? 0);
    throw error;
  });
}

// Agent-side commands load only what they use: a daemon lives for months on every agent host.
const agentSide = ["daemon", "svid", "run"].includes(process.argv[2] ?? "") && !process.argv.includes("--version");
const { runCli } = agentSide ? await import("../dist/src/cli/agent-cli.js").then((m) => ({ runCli: m.runAgentCli })) : await import("../dist/src/cli/index.js");
process.exitCode = await runCli(process.argv);
