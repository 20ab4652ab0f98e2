import type { Command } from "commander";
import { type Io, printJson, printTable } from "../output.js";
import { adminOptions, withAdminClient } from "./shared.js";

interface CaDescription {
  trustDomain: string;
  caPin: string;
  bundleSequence: number;
  root: { id: string; notAfter: string; fingerprintSha256: string };
  intermediates: { id: string; state: string; notAfter: string; retiredAt: string | null }[];
  jwtKeys: { kid: string; state: string; retiredAt: string | null }[];
}

function printCa(io: Io, ca: CaDescription): void {
  io.out(`trust domain  ${ca.trustDomain}\nCA pin        ${ca.caPin}\nbundle seq    ${ca.bundleSequence}\nroot          ${ca.root.id} (until ${ca.root.notAfter})\n`);
  printTable(io, ["AUTHORITY", "STATE", "NOT AFTER", "RETIRED"], ca.intermediates.map((i) => [i.id, i.state, i.notAfter, i.retiredAt]));
  io.out("");
  printTable(io, ["JWT KEY ID", "STATE", "RETIRED"], ca.jwtKeys.map((k) => [k.kid, k.state, k.retiredAt]));
}

export function registerCa(program: Command, io: Io): void {
  const ca = program.command("ca").description("Inspect and rotate the trust domain's certificate authority");

  adminOptions(ca.command("show").description("Show the root, intermediates, JWT keys and the CA pin")).action(async (_opts: unknown, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const description = await client.request<CaDescription>("GET", "/v1/ca");
      if (g.format === "json") printJson(io, description);
      else printCa(io, description);
    });
  });

  adminOptions(
    ca
      .command("rotate")
      .description("Rotate the intermediate CA and JWT key in two phases")
      .option("--activate", "phase 2: start signing with the prepared authority")
      .option("--force", "with --activate: do not wait for the bundle refresh interval")
      .addHelpText(
        "after",
        `
Phase 1 (no flag) prepares a new intermediate and JWT key and publishes them in the trust
bundle without signing anything. Once verifiers have refreshed the bundle (the refresh hint,
5 minutes by default), phase 2 (--activate) makes them sign; the previous authority stays
in the bundle until every SVID it signed has expired.`,
      ),
  ).action(async (opts: { activate?: boolean; force?: boolean }, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const result = await client.request<{ phase: string; intermediateId: string; kid: string; ca: CaDescription }>("POST", "/v1/ca/rotate", {
        phase: opts.activate ? "activate" : "prepare",
        force: Boolean(opts.force),
      });
      if (g.format === "json") printJson(io, result);
      else {
        io.out(
          result.phase === "prepare"
            ? `Prepared intermediate ${result.intermediateId} and JWT key ${result.kid}; they are published in the bundle (sequence ${result.ca.bundleSequence}).\nRun \`mandate ca rotate --activate\` once verifiers have refreshed the bundle.\n`
            : `Activated intermediate ${result.intermediateId} and JWT key ${result.kid}; the previous ones stay published until what they signed expires.\n`,
        );
        printCa(io, result.ca);
      }
    });
  });
}
