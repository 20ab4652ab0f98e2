#!/usr/bin/env node
// Sized before anything touches libuv's threadpool.
import "../dist/src/cli/threadpool.js";

const { runCli } = await import("../dist/src/cli/index.js");
process.exitCode = await runCli(process.argv);
