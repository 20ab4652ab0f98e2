import { MandateError } from "../errors/index.js";
import type { AuditEventTable, Store, StoreTx } from "../store/index.js";
import { prepareQuery } from "../store/prepared.js";

/** One audit_events row as the append writes it (every column but the table's own sequence). */
export type AuditEventRow = Required<Omit<AuditEventTable, "seq">>;

export interface ChainHead {
  seq: number;
  chain_hash: string;
}

/**
 * The three statements of an append — read the chain head (locked), insert the event,
 * move the head — built once. Every event of every proxied call runs them, so on
 * SQLite they run as prepared statements on the connection the transaction holds, and
 * on Postgres as queries compiled once with fresh values bound.
 */
export interface AuditRowWriter {
  readHead(tx: StoreTx): Promise<ChainHead>;
  insert(tx: StoreTx, row: AuditEventRow): Promise<void>;
  moveHead(tx: StoreTx, head: ChainHead): Promise<void>;
}

const COLUMNS: readonly (keyof AuditEventRow)[] = ["id", "time", "type", "code", "actor_spiffe_id", "actor_agent", "actor_user", "task_id", "session_id", "delegation_id", "decision", "outcome", "body", "chain_seq", "leaf_hash", "chain_hash"];

export function auditRowWriterFor(store: Store): AuditRowWriter {
  return store.kind === "sqlite" ? sqliteRowWriter(store) : compiledRowWriter(store);
}

function sqliteRowWriter(store: Store): AuditRowWriter {
  const head = store.prepareSqliteStatement("select seq, chain_hash from audit_chain_head where id = 1")!;
  const insert = store.prepareSqliteStatement(`insert into audit_events (${COLUMNS.join(", ")}) values (${COLUMNS.map(() => "?").join(", ")})`)!;
  const move = store.prepareSqliteStatement("update audit_chain_head set seq = ?, chain_hash = ? where id = 1")!;
  return {
    async readHead() {
      return headOf(head.get() as ChainHead | undefined);
    },
    async insert(_tx, row) {
      insert.run(COLUMNS.map((column) => row[column]));
    },
    async moveHead(_tx, next) {
      move.run(next.seq, next.chain_hash);
    },
  };
}

function compiledRowWriter(store: Store): AuditRowWriter {
  // Lock the head row: concurrent writers (several control planes on Postgres) append one after another.
  const head = prepareQuery([], () => store.db.selectFrom("audit_chain_head").select(["seq", "chain_hash"]).where("id", "=", 1).forUpdate());
  const insert = prepareQuery(COLUMNS, (v) => store.db.insertInto("audit_events").values(v));
  const move = prepareQuery(["seq", "chain_hash"], (v) => store.db.updateTable("audit_chain_head").set(v).where("id", "=", 1));
  return {
    async readHead(tx) {
      return headOf((await head(tx, {})).rows[0]);
    },
    async insert(tx, row) {
      await insert(tx, row);
    },
    async moveHead(tx, next) {
      await move(tx, next);
    },
  };
}

function headOf(row: ChainHead | undefined): ChainHead {
  // Migrations create the row; without it the chain cannot continue, and nothing may be appended unchained.
  if (!row) throw new MandateError("AUDIT_TAMPERED", "the audit chain head row is missing: the store was altered outside Mandate");
  return { seq: Number(row.seq), chain_hash: row.chain_hash };
}
