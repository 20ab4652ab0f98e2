import { describe, expect, it } from "vitest";
import { RevisionPoller } from "./revision.js";

function fakeMeta(initial: string) {
  const state = { value: initial, fail: false, reads: 0 };
  return {
    state,
    store: {
      async getMeta() {
        state.reads++;
        if (state.fail) throw new Error("database is gone");
        return state.value;
      },
    },
  };
}

describe("RevisionPoller", () => {
  it("loads at start, reloads only when the revision moves or a refresh is forced", async () => {
    const meta = fakeMeta("1");
    const loads: string[] = [];
    const poller = new RevisionPoller(meta.store, "k", async (r) => void loads.push(r));
    await poller.start(60_000);
    await poller.refresh();
    expect(loads).toEqual(["1"]);
    meta.state.value = "2";
    await poller.refresh();
    await poller.refresh(true);
    expect(loads).toEqual(["1", "2", "2"]);
    poller.stop();
  });

  it("never runs two loads at once; a forced refresh during one reads again after it", async () => {
    const meta = fakeMeta("1");
    let running = 0;
    let maxRunning = 0;
    const seen: string[] = [];
    const poller = new RevisionPoller(meta.store, "k", async (r) => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      await new Promise((resolve) => setTimeout(resolve, 20));
      seen.push(r);
      running--;
    });
    const first = poller.refresh(true);
    meta.state.value = "2";
    const second = poller.refresh(true);
    await Promise.all([first, second]);
    expect(maxRunning).toBe(1);
    expect(seen.at(-1)).toBe("2");
  });

  it("reports staleness (with the error) once refreshes have failed for longer than allowed, and recovers", async () => {
    const meta = fakeMeta("1");
    let t = 1_000;
    const poller = new RevisionPoller(meta.store, "k", async () => undefined, () => t);
    await poller.start(60_000);
    expect(poller.staleness(5_000)).toBeUndefined();
    meta.state.fail = true;
    t += 6_000;
    await expect(poller.refresh()).rejects.toThrow("database is gone");
    const stale = poller.staleness(5_000);
    expect(stale?.ageMs).toBe(6_000);
    expect((stale?.error as Error).message).toBe("database is gone");
    meta.state.fail = false;
    await poller.refresh();
    expect(poller.staleness(5_000)).toBeUndefined();
    poller.stop();
    t += 60_000;
    expect(poller.staleness(5_000), "a stopped poller is not polling, so it reports nothing").toBeUndefined();
  });
});
