#!/usr/bin/env node
import { runCli } from "../dist/src/cli/index.js";

process.exitCode = await runCli(process.argv);
