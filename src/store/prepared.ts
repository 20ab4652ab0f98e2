import type { CompiledQuery, QueryResult } from "kysely";

interface Compilable<R> {
  compile(): CompiledQuery<R>;
}

interface Executor {
  executeQuery<R>(query: CompiledQuery<R>): Promise<QueryResult<R>>;
}

/**
 * A hot-path query built and compiled once; each call binds new values. Building and
 * compiling a Kysely query costs more than running a small SQLite statement, and
 * issuance runs the same few shapes every time. The query is built with placeholder
 * values, and the compiled parameters that are placeholders are replaced, in whatever
 * order the SQL uses them, by the values given at each call (the others stay constants).
 */
export function prepareQuery<const Names extends readonly string[], R>(names: Names, build: (values: Record<Names[number], never>) => Compilable<R>) {
  let compiled: { query: CompiledQuery<R>; slots: (number | undefined)[] } | undefined;
  const placeholders = Object.fromEntries(names.map((name, i) => [name, `\u0000prepared-${i}-${name}`])) as Record<Names[number], never>;
  return (executor: Executor, values: Record<Names[number], unknown>): Promise<QueryResult<R>> => {
    if (!compiled) {
      const query = build(placeholders).compile();
      const index = new Map(names.map((name, i) => [placeholders[name as Names[number]] as unknown, i]));
      compiled = { query, slots: query.parameters.map((p) => index.get(p)) };
    }
    const { query, slots } = compiled;
    const parameters = slots.map((slot, i) => (slot === undefined ? query.parameters[i] : values[names[slot] as Names[number]]));
    return executor.executeQuery({ ...query, parameters });
  };
}
