import { loadModule, normalizeSync, parseSync } from "libpg-query";
import type { StatementClass } from "../policy/index.js";
import { isSideEffectFree } from "./safe-functions.js";

/** What one SQL text (one or more statements) does, as far as policy is concerned. */
export interface Classification {
  /** every class any statement contains, sorted */
  statements: StatementClass[];
  /** relations named (schema-qualified where the text qualifies them), CTE names excluded */
  tables: string[];
  /** functions called that are not known to be side-effect free */
  functions: string[];
  /** number of top-level statements */
  count: number;
  /** the text with every literal replaced by $n: what the audit log keeps by default */
  redacted: string;
  /** names the text PREPAREs (the session remembers what each one does) */
  prepares: { name: string; classification: Omit<Classification, "prepares" | "executes" | "deallocates" | "redacted"> }[];
  /** names the text EXECUTEs: the session substitutes what it knows of each */
  executes: string[];
  /** DEALLOCATE names; "*" for DEALLOCATE ALL / DISCARD ALL */
  deallocates: string[];
}

export class UnparseableStatement extends Error {}

let loaded: Promise<void> | undefined;

/** The parser is WebAssembly; it must be instantiated once before the first classification. */
export function loadParser(): Promise<void> {
  loaded ??= loadModule();
  return loaded;
}

type Node = Record<string, unknown>;

const TOP_LEVEL: Record<string, StatementClass> = {
  SelectStmt: "select",
  InsertStmt: "insert",
  UpdateStmt: "update",
  DeleteStmt: "delete",
  TruncateStmt: "delete",
  TransactionStmt: "transaction",
  ConstraintsSetStmt: "transaction",
  VariableShowStmt: "session",
  DiscardStmt: "session",
  DeallocateStmt: "session",
  ClosePortalStmt: "session",
  UnlistenStmt: "session",
  FetchStmt: "select",
  CopyStmt: "copy",
  DoStmt: "function",
  CallStmt: "function",
  LoadStmt: "function",
  GrantStmt: "dcl",
  GrantRoleStmt: "dcl",
  CreateRoleStmt: "dcl",
  AlterRoleStmt: "dcl",
  AlterRoleSetStmt: "dcl",
  DropRoleStmt: "dcl",
  ReassignOwnedStmt: "dcl",
  DropOwnedStmt: "dcl",
  AlterDefaultPrivilegesStmt: "dcl",
  AlterSystemStmt: "dcl",
  SecLabelStmt: "dcl",
  CreatePolicyStmt: "dcl",
  AlterPolicyStmt: "dcl",
  CreateUserMappingStmt: "dcl",
  AlterUserMappingStmt: "dcl",
  DropUserMappingStmt: "dcl",
  ExplainStmt: "select",
  MergeStmt: "update",
  PrepareStmt: "session",
  ExecuteStmt: "session",
  DeclareCursorStmt: "select",
  LockStmt: "other",
  NotifyStmt: "other",
  ListenStmt: "other",
  VacuumStmt: "other",
  CheckPointStmt: "other",
  ClusterStmt: "other",
  ReindexStmt: "ddl",
  RefreshMatViewStmt: "ddl",
};

const DDL_PREFIX = /^(Create|Alter|Drop|Rename|Comment|Define|Index|View|Rule|Composite|Import)/;

/** Session settings that change whose privileges later statements run with. */
const PRIVILEGE_SETTINGS = new Set(["role", "session_authorization"]);

function classOfStatement(type: string, node: Node): StatementClass {
  if (type === "VariableSetStmt") {
    const name = typeof node.name === "string" ? node.name.toLowerCase() : "";
    if (node.kind === "VAR_RESET_ALL" || PRIVILEGE_SETTINGS.has(name)) return "dcl";
    if (name.startsWith("transaction") || name === "transaction_isolation") return "transaction";
    return "session";
  }
  return TOP_LEVEL[type] ?? (DDL_PREFIX.test(type) ? "ddl" : "other");
}

/** Statement nodes found anywhere in a tree (CTEs, subqueries, EXPLAIN, PREPARE, COPY (query)) add their class. */
const NESTED: Record<string, StatementClass> = { SelectStmt: "select", InsertStmt: "insert", UpdateStmt: "update", DeleteStmt: "delete", MergeStmt: "update" };

interface Collected {
  classes: Set<StatementClass>;
  tables: Set<string>;
  cteNames: Set<string>;
  functions: Set<string>;
}

function walk(value: unknown, into: Collected): void {
  if (Array.isArray(value)) {
    for (const item of value) walk(item, into);
    return;
  }
  if (value === null || typeof value !== "object") return;
  // Typed fields (DeleteStmt.relation, CopyStmt.relation…) hold a RangeVar without its wrapper.
  if (typeof (value as Node).relname === "string" && "relpersistence" in (value as Node)) visitNode("RangeVar", value as Node, into);
  for (const [key, child] of Object.entries(value as Node)) {
    if (child !== null && typeof child === "object" && !Array.isArray(child) && /^[A-Z]/.test(key)) visitNode(key, child as Node, into);
    else walk(child, into);
  }
}

function visitNode(type: string, node: Node, into: Collected): void {
  const nested = NESTED[type];
  // VALUES lists under INSERT read nothing.
  if (nested && !(type === "SelectStmt" && node.valuesLists && !node.fromClause)) into.classes.add(nested);
  switch (type) {
    case "SelectStmt":
      // FOR UPDATE / FOR SHARE takes row locks: a write as far as a reader's role is concerned.
      if (Array.isArray(node.lockingClause) && node.lockingClause.length > 0) into.classes.add("update");
      if (node.intoClause) into.classes.add("ddl");
      break;
    case "InsertStmt": {
      const conflict = node.onConflictClause as Node | undefined;
      if (conflict?.action === "ONCONFLICT_UPDATE") into.classes.add("update");
      break;
    }
    case "MergeStmt":
      for (const clause of (node.mergeWhenClauses as Node[] | undefined) ?? []) {
        const command = (clause.MergeWhenClause as Node | undefined)?.commandType;
        if (command === "CMD_INSERT") into.classes.add("insert");
        else if (command === "CMD_DELETE") into.classes.add("delete");
        else into.classes.add("update");
      }
      break;
    case "RangeVar": {
      const rel = String(node.relname ?? "");
      const schema = typeof node.schemaname === "string" ? node.schemaname : undefined;
      const catalog = typeof node.catalogname === "string" ? `${node.catalogname}.` : "";
      into.tables.add(schema ? `${catalog}${schema}.${rel}` : rel);
      break;
    }
    case "DropStmt":
      if (node.removeType === "OBJECT_TABLE" || node.removeType === "OBJECT_VIEW" || node.removeType === "OBJECT_MATVIEW" || node.removeType === "OBJECT_FOREIGN_TABLE") {
        for (const object of (node.objects as Node[] | undefined) ?? []) {
          const items = ((object.List as Node | undefined)?.items as Node[] | undefined) ?? [];
          into.tables.add(items.map((i) => String((i.String as Node | undefined)?.sval ?? "")).join("."));
        }
      }
      break;
    case "CommonTableExpr":
      if (typeof node.ctename === "string") into.cteNames.add(node.ctename);
      break;
    case "FuncCall": {
      const parts = ((node.funcname as Node[] | undefined) ?? []).map((p) => String((p.String as Node | undefined)?.sval ?? ""));
      if (!isSideEffectFree(parts)) {
        into.classes.add("function");
        into.functions.add(parts.join("."));
      }
      break;
    }
    case "CopyStmt":
      if (node.is_from) into.classes.add("insert");
      if (node.is_program) {
        into.classes.add("function");
        into.functions.add("COPY PROGRAM");
      } else if (typeof node.filename === "string") {
        into.classes.add("function");
        into.functions.add("COPY FILE");
      }
      break;
    case "DoStmt":
      into.functions.add("DO");
      break;
    case "LoadStmt":
      into.functions.add("LOAD");
      break;
    case "CallStmt": {
      const call = (node.funccall as Node | undefined)?.FuncCall as Node | undefined;
      const parts = ((call?.funcname as Node[] | undefined) ?? []).map((p) => String((p.String as Node | undefined)?.sval ?? ""));
      into.functions.add(parts.join(".") || "CALL");
      break;
    }
  }
  if (type === "RangeVar") return;
  walk(node, into);
}

function collect(stmts: { stmt?: Node }[], into: Collected): { prepares: Classification["prepares"]; executes: string[]; deallocates: string[] } {
  const prepares: Classification["prepares"] = [];
  const executes: string[] = [];
  const deallocates: string[] = [];
  for (const raw of stmts) {
    const stmt = raw.stmt ?? {};
    const type = Object.keys(stmt)[0];
    if (!type) continue;
    const node = stmt[type] as Node;
    into.classes.add(classOfStatement(type, node));
    if (type === "PrepareStmt" && typeof node.name === "string") {
      const inner: Collected = { classes: new Set(), tables: new Set(), cteNames: new Set(), functions: new Set() };
      collect([{ stmt: node.query as Node }], inner);
      prepares.push({ name: node.name, classification: summarize(inner, 1) });
    }
    if (type === "ExecuteStmt" && typeof node.name === "string") executes.push(node.name);
    if (type === "DeallocateStmt") deallocates.push(node.isall || typeof node.name !== "string" ? "*" : node.name);
    if (type === "DiscardStmt" && (node.target === "DISCARD_ALL" || node.target === "DISCARD_PLANS")) deallocates.push("*");
    visitNode(type, node, into);
  }
  return { prepares, executes, deallocates };
}

function summarize(into: Collected, count: number) {
  const tables = [...into.tables].filter((t) => !into.cteNames.has(t)).sort();
  return { statements: [...into.classes].sort(), tables, functions: [...into.functions].sort(), count };
}

/**
 * Parses with the real PostgreSQL parser and classifies. Throws UnparseableStatement for
 * text the server would not accept either: such text is never passed through.
 */
export function classifySql(text: string): Classification {
  let tree: { stmts?: { stmt?: Node }[] };
  try {
    tree = parseSync(text) as never;
  } catch (error) {
    throw new UnparseableStatement((error as Error).message);
  }
  const stmts = tree.stmts ?? [];
  const into: Collected = { classes: new Set(), tables: new Set(), cteNames: new Set(), functions: new Set() };
  const extra = collect(stmts, into);
  const summary = summarize(into, stmts.length);
  // An empty query string runs nothing; the server answers EmptyQueryResponse.
  return { ...summary, redacted: redact(text), ...extra };
}

/** The text with literals replaced by $n; the parser decides what a literal is. */
export function redact(text: string): string {
  try {
    return normalizeSync(text);
  } catch {
    return "<unparseable>";
  }
}

/**
 * Classification cached by exact text, then by literal-free shape: two texts that
 * normalize alike differ only in constants, and constants never change what a statement
 * is, which tables it names or which functions it calls.
 */
export class ClassificationCache {
  private readonly exact = new Map<string, Classification>();
  private readonly shapes = new Map<string, Classification>();
  private readonly integerFree = new Map<string, Classification>();
  hits = 0;
  misses = 0;

  constructor(private readonly maxEntries = 5000) {}

  classify(text: string): Classification {
    const exact = this.exact.get(text);
    if (exact) {
      this.hits++;
      return exact;
    }
    // Before paying for the parser's normalize: texts that differ only in integer literals.
    const key = integerFreeKey(text);
    if (key !== undefined) {
      const known = this.integerFree.get(key);
      if (known) {
        this.hits++;
        return known;
      }
    }
    let shape: string | undefined;
    try {
      shape = normalizeSync(text);
    } catch {
      shape = undefined;
    }
    if (shape !== undefined) {
      const known = this.shapes.get(shape);
      if (known) {
        this.hits++;
        remember(this.exact, text, known, this.maxEntries);
        return known;
      }
    }
    this.misses++;
    const result = classifySql(text);
    if (shape !== undefined) remember(this.shapes, shape, result, this.maxEntries);
    remember(this.exact, text, result, this.maxEntries);
    // Only when normalize replaced every integer: then the redacted text is the same for all of them too.
    if (key !== undefined && !STANDALONE_INTEGER.test(result.redacted)) remember(this.integerFree, key, result, this.maxEntries);
    return result;
  }
}

/**
 * Texts made only of unquoted words, integers, whitespace and a few punctuation marks (no
 * quotes, dollar signs, slashes, backslashes or `--`, so no strings, comments, parameters
 * or escapes can hide anything) keyed with every standalone integer of up to 9 digits (bounded by neither an
 * identifier character nor a dot) replaced by `?`, which such a text cannot contain. Two
 * texts with one key differ only in integer constants, each lexed alone as an integer
 * either way, so they parse to the same tree shape: same classes, tables and functions.
 * Anything else → undefined (the parser's normalize decides).
 */
const INTEGER_KEY_ALPHABET = /^[A-Za-z0-9_ \t\r\n,;=().<>*+-]*$/;
const STANDALONE_INTEGER = /(?<![A-Za-z0-9_.$])\d+(?![A-Za-z0-9_.])/;
// Up to 9 digits: always a plain integer constant; a longer run may be numeric, which normalize treats differently.
const STANDALONE_INTEGERS = /(?<![A-Za-z0-9_.$])\d{1,9}(?![A-Za-z0-9_.])/g;

export function integerFreeKey(text: string): string | undefined {
  if (text.length > 4096 || !INTEGER_KEY_ALPHABET.test(text) || text.includes("--")) return undefined;
  return text.replace(STANDALONE_INTEGERS, "?");
}

function remember(map: Map<string, Classification>, key: string, value: Classification, max: number): void {
  if (key.length > 64 * 1024) return;
  if (map.size >= max) map.delete(map.keys().next().value!);
  map.set(key, value);
}
