import { describe, expect, it } from "vitest";
import { onStopSignal, untilStopSignal } from "./signals.js";

describe("stop signals", () => {
  it("runs once on the first signal and leaves no handler behind", async () => {
    const before = [process.listenerCount("SIGINT"), process.listenerCount("SIGTERM")];
    let stops = 0;
    onStopSignal(() => stops++);
    expect(process.listenerCount("SIGTERM")).toBe(before[1]! + 1);
    process.emit("SIGTERM");
    process.emit("SIGINT");
    expect(stops).toBe(1);
    expect([process.listenerCount("SIGINT"), process.listenerCount("SIGTERM")]).toEqual(before);
  });

  it("removes its handlers when the command ends without a signal", () => {
    const before = process.listenerCount("SIGINT");
    const remove = onStopSignal(() => undefined);
    remove();
    expect(process.listenerCount("SIGINT")).toBe(before);
  });

  it("untilStopSignal resolves on SIGINT", async () => {
    const stopped = untilStopSignal();
    process.emit("SIGINT");
    await expect(stopped).resolves.toBeUndefined();
  });
});
