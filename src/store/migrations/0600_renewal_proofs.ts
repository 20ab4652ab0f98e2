import type { Kysely, Migration } from "kysely";
import type { Dialect } from "../migrations.js";

/**
 * Renewal by proof of possession: each issued certificate's digest (a proof presents the
 * certificate back, and the digest shows it is one this trust domain issued and recorded),
 * and the last proof each instance renewed with (the same proof is never accepted twice).
 */
export default function renewalProofs(_dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema.alterTable("issued_svids").addColumn("cert_sha256", "text").execute();
      await db.schema.alterTable("instances").addColumn("last_proof_sha256", "text").execute();
    },
  };
}
