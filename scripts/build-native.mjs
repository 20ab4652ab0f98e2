// `npm install` runs this: it builds the peer-credential addon the Workload API needs to
// attest callers (native/peercred.c). node-gyp normally downloads Node's headers; when the
// running Node ships its headers beside it (official tarballs, most distribution packages)
// they are used instead, so the build also works on hosts without internet access.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
if (process.platform !== "linux") {
  console.warn("mandate: the Workload API's workload attestation (SO_PEERCRED) is Linux-only; skipping the native build. `mandate daemon --socket` will refuse to start here.");
  process.exit(0);
}
const args = ["rebuild"];
const prefix = resolve(dirname(process.execPath), "..");
if (!process.env.npm_config_nodedir && existsSync(join(prefix, "include", "node", "node_api.h"))) args.push(`--nodedir=${prefix}`);
const nodeGyp = process.env.npm_config_node_gyp;
const result = nodeGyp
  ? spawnSync(process.execPath, [nodeGyp, ...args], { cwd: root, stdio: "inherit" })
  : spawnSync("node-gyp", args, { cwd: root, stdio: "inherit", shell: false });
if (result.error || result.status !== 0) {
  console.error("mandate: building native/peercred.c failed; install python3, make and a C compiler, then run `npm rebuild mandate`.");
  process.exit(result.status || 1);
}
