/**
 * Scheduling of the monitor's own threads (Linux). The vCPU loop runs on the main thread; V8's
 * compiler and GC workers (Node starts 4 whatever the core count) and libuv's pool are the others.
 * While a boot warms up, V8 has hundreds of functions to optimise, and on a 2-core machine its
 * compiler threads and the main thread all want a core: the vCPU loop then runs on a share of one,
 * and each optimised function arrives later. Raising the other threads' nice value leaves the
 * main thread its core while compilation and GC use the rest, as a hypervisor favours its vCPU
 * threads over housekeeping. Linux priorities are per thread, and lowering one's own threads'
 * priority needs no privilege.
 */
import { readdirSync } from "node:fs";
import { getPriority, setPriority } from "node:os";

/** The nice value `favourMainThread` gives the other threads (0 is the default, 19 the lowest). */
export const HELPER_THREAD_NICE = 10;

/**
 * Raises the nice value of every thread of this process but the main one to at least `nice`;
 * returns how many it changed. Does nothing (returns 0) off Linux, where priorities are per
 * process. A thread that exits meanwhile, or one already at a lower priority, is left alone.
 */
export function favourMainThread(nice = HELPER_THREAD_NICE): number {
  if (process.platform !== "linux") return 0;
  let tids: string[];
  try {
    tids = readdirSync("/proc/self/task");
  } catch {
    return 0;
  }
  let changed = 0;
  for (const t of tids) {
    const tid = Number(t);
    if (!Number.isInteger(tid) || tid === process.pid) continue;
    try {
      if (getPriority(tid) < nice) {
        setPriority(tid, nice);
        changed++;
      }
    } catch {
      // Gone, or not ours to change.
    }
  }
  return changed;
}
