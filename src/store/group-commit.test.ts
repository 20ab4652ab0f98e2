import { describe, expect, it } from "vitest";
import { GroupCommit } from "./group-commit.js";

const turn = () => new Promise((r) => setImmediate(r));

/** A sync the test completes by hand, recording which commits had happened when each one began. */
function manualSync(commits: string[]) {
  const started: { sawCommits: string[]; finish: (error?: Error) => void }[] = [];
  const sync = () =>
    new Promise<void>((resolve, reject) => {
      started.push({ sawCommits: [...commits], finish: (error) => (error ? reject(error) : resolve()) });
    });
  return { started, sync };
}

/** A "transaction" that records what each committed batch wrote. */
function recordingTransaction(commits: string[]) {
  return async (body: (tx: string[]) => Promise<void>) => {
    const tx: string[] = [];
    await body(tx);
    commits.push(...tx);
  };
}

describe("group commit with a sync off the event loop", () => {
  it("acknowledges a write only after a sync that began after its commit, and commits the next batch meanwhile", async () => {
    const commits: string[] = [];
    const { started, sync } = manualSync(commits);
    const group = new GroupCommit<string[]>(recordingTransaction(commits), 512, sync);
    const acked: string[] = [];
    const write = (name: string) => group.write(async (tx) => void tx.push(name)).then(() => void acked.push(name));
    const a = write("a");
    await turn();
    await turn();
    expect(commits).toEqual(["a"]);
    expect(started).toHaveLength(1);
    expect(acked).toEqual([]);
    // While a's sync runs, b commits; a sync that began before b's commit must not acknowledge b.
    const b = write("b");
    const c = write("c");
    await turn();
    await turn();
    expect(commits).toEqual(["a", "b", "c"]);
    started[0]!.finish();
    await a;
    expect(acked).toEqual(["a"]);
    await turn();
    expect(started).toHaveLength(2);
    expect(started[1]!.sawCommits).toEqual(["a", "b", "c"]);
    started[1]!.finish();
    await Promise.all([b, c]);
    expect(acked).toEqual(["a", "b", "c"]);
  });

  it("commits arriving during a sync share one follow-up sync", async () => {
    const commits: string[] = [];
    const { started, sync } = manualSync(commits);
    const group = new GroupCommit<string[]>(recordingTransaction(commits), 1, sync);
    const writes = ["a", "b", "c", "d"].map((name) => group.write(async (tx) => void tx.push(name)));
    for (let i = 0; i < 10; i++) await turn();
    // maxBatch 1: four commits, but only the first sync and one queued behind it.
    expect(commits).toEqual(["a", "b", "c", "d"]);
    expect(started).toHaveLength(1);
    started[0]!.finish();
    for (let i = 0; i < 5; i++) await turn();
    expect(started).toHaveLength(2);
    started[1]!.finish();
    await Promise.all(writes);
  });

  it("a failed sync fails every write it was to acknowledge", async () => {
    const commits: string[] = [];
    const { started, sync } = manualSync(commits);
    const group = new GroupCommit<string[]>(async (body) => body([]), 512, sync);
    const write = group.write(async () => undefined);
    for (let i = 0; i < 3; i++) await turn();
    started[0]!.finish(new Error("EIO"));
    await expect(write).rejects.toThrow("EIO");
  });
});
