// threads.ts: the monitor's other threads get a lower priority than its main (vCPU) thread.
import { readdirSync } from "node:fs";
import { getPriority } from "node:os";
import { describe, expect, it } from "vitest";
import { favourMainThread, HELPER_THREAD_NICE } from "../src/threads.js";

describe("favourMainThread", () => {
  it("raises every other thread's nice value and leaves the main thread's (Linux; elsewhere nothing)", () => {
    if (process.platform !== "linux") {
      expect(favourMainThread()).toBe(0);
      return;
    }
    const main = getPriority(process.pid);
    const others = readdirSync("/proc/self/task")
      .map(Number)
      .filter((t) => t !== process.pid);
    // Node always runs V8's platform workers besides the main thread.
    expect(others.length).toBeGreaterThan(0);
    favourMainThread();
    expect(getPriority(process.pid)).toBe(main);
    for (const t of readdirSync("/proc/self/task").map(Number))
      if (t !== process.pid) expect(getPriority(t)).toBeGreaterThanOrEqual(HELPER_THREAD_NICE);
    // Nothing left to change the second time; a thread is never made more important.
    expect(favourMainThread()).toBe(0);
    expect(favourMainThread(HELPER_THREAD_NICE - 5)).toBe(0);
  });
});
