import { MandateError } from "../errors/index.js";
import type { AccessResource, McpItemKind, StatementClass } from "./types.js";

/**
 * Canonical resource strings (see types.ts). They are what delegation scopes, the runtime
 * allow-list, reasons and audit events speak. Only the identifying fields are in the
 * string; attributes (an LLM's provider, a database user, tables, labels, a delegation's
 * TTL) are matched by roles and Cedar conditions, so `parseResourceString` returns them
 * empty.
 *
 * A database request that contains several statement classes is written with "+"
 * (`db:orders/select+delete`); scopes are checked once per class (`resourceStrings`).
 */

/**
 * Longest canonical string a decision accepts. Matching costs input × pattern length, so an
 * unbounded name (a megabyte-long resource URI from an agent) is refused as input instead.
 */
export const MAX_RESOURCE_LENGTH = 4096;

/** dot segments, percent-encoded dots or slashes, backslashes: what path traversal is made of (checked before any query or fragment) */
const DOT_SEGMENT = /(^|[/:])\.\.?([/?#]|$)|%2e|%2f|%5c|\\/i;

export const STATEMENT_CLASSES: readonly StatementClass[] = ["select", "insert", "update", "delete", "ddl", "dcl", "copy", "function", "transaction", "session", "other"];
const MCP_ITEM_PREFIXES: readonly Exclude<McpItemKind, "tool">[] = ["prompt", "resource", "client"];

function invalid(message: string): never {
  throw new MandateError("INVALID_ARGUMENT", message);
}

function checkName(what: string, value: string, forbidden: string): string {
  if (typeof value !== "string" || value.length === 0) invalid(`${what} cannot be empty`);
  for (const c of forbidden) if (value.includes(c)) invalid(`${what} ${JSON.stringify(value)} cannot contain ${JSON.stringify(c)}`);
  return value;
}

export function resourceString(resource: AccessResource): string {
  const s = formatResource(resource);
  if (s.length > MAX_RESOURCE_LENGTH) invalid(`a resource is at most ${MAX_RESOURCE_LENGTH} characters (this one has ${s.length}: ${s.slice(0, 60)}…)`);
  return s;
}

function formatResource(resource: AccessResource): string {
  if (resource === null || typeof resource !== "object") invalid("a resource is an object with a kind");
  switch (resource.kind) {
    case "mcp": {
      const server = checkName("an MCP server name", resource.server, "/");
      if (resource.item === "tool") return `mcp:${server}/${checkName("an MCP tool name", resource.name, "/:")}`;
      if (!MCP_ITEM_PREFIXES.includes(resource.item)) invalid(`unknown MCP item kind ${JSON.stringify(resource.item)}`);
      if (typeof resource.name !== "string" || resource.name.length === 0) invalid(`an MCP ${resource.item} name cannot be empty`);
      // A glob like file:///srv/** must not be escaped with file:///srv/../etc/passwd.
      if (resource.item === "resource" && DOT_SEGMENT.test(resource.name.split(/[?#]/, 1)[0]!)) {
        invalid(`MCP resource URI ${JSON.stringify(resource.name.slice(0, 80))} has "." or ".." segments, an encoded dot or a backslash; refused so that globs over URIs cannot be escaped`);
      }
      return `mcp:${server}/${resource.item}:${resource.name}`;
    }
    case "llm":
      return `llm:${checkName("a model name", resource.model, "")}`;
    case "db": {
      const database = checkName("a database name", resource.database, "/");
      if (!Array.isArray(resource.statements) || resource.statements.length === 0) invalid("a database request names at least one statement class");
      for (const s of resource.statements) if (!STATEMENT_CLASSES.includes(s)) invalid(`unknown statement class ${JSON.stringify(s)}`);
      return `db:${database}/${resource.statements.join("+")}`;
    }
    case "delegate":
      return `delegate:${checkName("an agent name", resource.agent, "")}`;
    default:
      return invalid(`unknown resource kind ${JSON.stringify((resource as { kind?: unknown }).kind)}`);
  }
}

/** One string per thing a scope must allow: one per statement class for databases, else one. */
export function resourceStrings(resource: AccessResource): string[] {
  if (resource.kind !== "db") return [resourceString(resource)];
  const database = checkName("a database name", resource.database, "/");
  resourceString(resource);
  return [...new Set(resource.statements)].map((s) => `db:${database}/${s}`);
}

export function parseResourceString(s: string): AccessResource {
  if (typeof s !== "string") invalid("a resource is a string such as mcp:k8s/read_logs");
  const colon = s.indexOf(":");
  const kind = colon > 0 ? s.slice(0, colon) : "";
  const rest = s.slice(colon + 1);
  switch (kind) {
    case "mcp": {
      const slash = rest.indexOf("/");
      if (slash <= 0 || slash === rest.length - 1) invalid(`${JSON.stringify(s)}: an MCP resource is mcp:<server>/<tool> (or /prompt:, /resource:, /client:)`);
      const server = rest.slice(0, slash);
      const item = rest.slice(slash + 1);
      const itemColon = item.indexOf(":");
      if (itemColon === -1) {
        return { kind: "mcp", server, item: "tool", name: item };
      }
      const prefix = item.slice(0, itemColon) as McpItemKind;
      const name = item.slice(itemColon + 1);
      if (!MCP_ITEM_PREFIXES.includes(prefix as Exclude<McpItemKind, "tool">) || name === "") {
        invalid(`${JSON.stringify(s)}: after the server comes a tool name (no ":") or prompt:<name>, resource:<uri>, client:<capability>`);
      }
      return { kind: "mcp", server, item: prefix, name };
    }
    case "llm":
      if (rest === "") invalid(`${JSON.stringify(s)}: a model resource is llm:<model>`);
      return { kind: "llm", model: rest };
    case "db": {
      const slash = rest.indexOf("/");
      if (slash <= 0) invalid(`${JSON.stringify(s)}: a database resource is db:<database>/<statement class>`);
      const statements = rest.slice(slash + 1).split("+") as StatementClass[];
      for (const st of statements) if (!STATEMENT_CLASSES.includes(st)) invalid(`${JSON.stringify(s)}: unknown statement class ${JSON.stringify(st)}; one of ${STATEMENT_CLASSES.join(", ")}`);
      return { kind: "db", database: rest.slice(0, slash), dbUser: "", statements, tables: [], functions: [] };
    }
    case "delegate":
      if (rest === "") invalid(`${JSON.stringify(s)}: a delegation resource is delegate:<agent>`);
      return { kind: "delegate", agent: rest, ttlMs: 0 };
    default:
      return invalid(`${JSON.stringify(s.slice(0, 80))}: a resource starts with mcp:, llm:, db: or delegate:`);
  }
}

/** The action a proxy names for a plain use of a resource (what `access check` assumes when none is given). */
export function defaultAction(resource: AccessResource): string {
  switch (resource.kind) {
    case "mcp":
      return resource.item === "tool" ? "mcp.tools/call" : resource.item === "prompt" ? "mcp.prompts/get" : resource.item === "resource" ? "mcp.resources/read" : `mcp.${resource.name}`;
    case "llm":
      return "llm.chat";
    case "db":
      return "db.query";
    case "delegate":
      return "delegate.create";
  }
}
