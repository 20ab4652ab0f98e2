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

  it("commits a deferred write with the next batch, ahead of that batch's own writes, or alone after its delay", async () => {
    const commits: string[] = [];
    const batches: string[][] = [];
    const group = new GroupCommit<string[]>(async (body) => {
      const tx: string[] = [];
      await body(tx);
      commits.push(...tx);
      batches.push(tx);
    }, 512, undefined, 40);
    const outcome = group.writeDeferred(async (tx) => void tx.push("outcome-1"));
    for (let i = 0; i < 5; i++) await turn();
    expect(commits).toEqual([]);
    await group.write(async (tx) => void tx.push("intent-2"));
    await outcome;
    expect(batches).toEqual([["outcome-1", "intent-2"]]);
    // With no write to ride on, it goes by itself once the delay has passed.
    const alone = group.writeDeferred(async (tx) => void tx.push("outcome-2"));
    await new Promise((r) => setTimeout(r, 10));
    expect(commits).toEqual(["outcome-1", "intent-2"]);
    await alone;
    expect(batches.at(-1)).toEqual(["outcome-2"]);
  });

  it("drain() commits deferred writes without waiting for their delay", async () => {
    const commits: string[] = [];
    // A delay far past the test's timeout: only drain() can commit this write in time.
    const group = new GroupCommit<string[]>(recordingTransaction(commits), 512, undefined, 3_600_000);
    const drained = group.writeDeferred(async (tx) => void tx.push("outcome-3"));
    await group.drain();
    await drained;
    expect(commits).toEqual(["outcome-3"]);
  });

  it("fails a deferred write with the batch it rode in", async () => {
    const group = new GroupCommit<string[]>(async (body) => {
      await body([]);
    }, 512, undefined, 1000);
    const deferred = group.writeDeferred(async () => undefined);
    const failing = group.write(async () => {
      throw new Error("disk full");
    });
    await expect(failing).rejects.toThrow("disk full");
    await expect(deferred).rejects.toThrow("disk full");
  });
});
