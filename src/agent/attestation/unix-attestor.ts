import { readFile, stat } from "node:fs/promises";
import { type Selector, parseSelector } from "../../identity/selectors.js";
import { type ProcessFacts, resolveSelectorPath } from "./process-facts.js";

/** An identity the daemon can hand out, and the selectors a caller must match (all of them). */
export interface WorkloadRegistration {
  spiffeId: string;
  selectors: readonly string[];
}

/** Why a process got what it got; the reasons go into the denial record. */
export interface AttestationResult {
  matched: string[];
  /** One line per registration that did not match, naming the first selector that failed. */
  mismatches: string[];
}

type NameTable = { mtimeMs: number; byId: Map<number, string> };
const tables = new Map<string, Promise<NameTable>>();

/** uid → name from /etc/passwd (gid → name from /etc/group), re-read when the file changes. */
async function nameOf(file: "/etc/passwd" | "/etc/group", id: number): Promise<string | undefined> {
  let mtimeMs: number;
  try {
    mtimeMs = (await stat(file)).mtimeMs;
  } catch {
    return undefined;
  }
  let table = tables.get(file);
  if (!table || (await table).mtimeMs !== mtimeMs) {
    table = readFile(file, "utf8").then(
      (text) => {
        const byId = new Map<number, string>();
        for (const line of text.split("\n")) {
          const [name, , idText] = line.split(":");
          const n = Number(idText);
          if (name && Number.isSafeInteger(n) && !byId.has(n)) byId.set(n, name);
        }
        return { mtimeMs, byId };
      },
      () => ({ mtimeMs, byId: new Map<number, string>() }),
    );
    tables.set(file, table);
  }
  return (await table).byId.get(id);
}

async function matches(selector: Selector, facts: ProcessFacts): Promise<boolean> {
  switch (selector.kind) {
    case "uid":
      return facts.uid === selector.value;
    case "gid":
      return facts.gid === selector.value;
    case "user":
      return (await nameOf("/etc/passwd", facts.uid)) === selector.value;
    case "group":
      return (await nameOf("/etc/group", facts.gid)) === selector.value;
    case "path": {
      if (facts.path === undefined) return false;
      if (facts.path === selector.value) return true;
      return (await resolveSelectorPath(selector.value)) === facts.path;
    }
    case "sha256":
      return (await facts.sha256()) === selector.value;
  }
}

/**
 * Unix workload attestation: a registration matches when every one of its selectors holds
 * for the process. Cheap selectors are checked first so the executable is hashed only when
 * everything else already matched. A registration without selectors never matches here;
 * the daemon supplies its default (its own uid) explicitly.
 */
export async function attestUnixProcess(facts: ProcessFacts, registrations: readonly WorkloadRegistration[]): Promise<AttestationResult> {
  const matched: string[] = [];
  const mismatches: string[] = [];
  const cost: Record<Selector["kind"], number> = { uid: 0, gid: 0, user: 1, group: 1, path: 2, sha256: 3 };
  for (const registration of registrations) {
    const selectors = registration.selectors.map(parseSelector).sort((a, b) => cost[a.kind] - cost[b.kind]);
    if (selectors.length === 0) {
      mismatches.push(`${registration.spiffeId}: no selectors registered`);
      continue;
    }
    let failed: Selector | undefined;
    for (const selector of selectors) {
      if (!(await matches(selector, facts))) {
        failed = selector;
        break;
      }
    }
    if (failed) mismatches.push(`${registration.spiffeId}: unix:${failed.kind}:${failed.value} does not match`);
    else matched.push(registration.spiffeId);
  }
  return { matched, mismatches };
}
