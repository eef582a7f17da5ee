// Shared by bench/boot.ts and bench/boot-ab.ts: launch a monitor, time it to the marker line the
// bundled initramfs's /init prints.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";

/** What the bundled guest's /init prints once it runs (guests/initramfs). */
export const MARKER = "TSKVM-BOOT-OK";
/** Longest one launch may take to print the marker. */
export const TIMEOUT_MS = 120_000;

/**
 * CPU time (user + system, ms) the process has used so far, from /proc/PID/stat (fields 14-15,
 * in clock ticks of 1/100 s on Linux): on a shared machine a steadier figure than wall time.
 */
export function cpuMs(pid: number | undefined, mainThread = false): number {
  if (pid === undefined) return Number.NaN;
  try {
    // /proc/PID/task/PID/stat: the main thread alone (V8's compiler and GC threads left out).
    const stat = readFileSync(mainThread ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`, "latin1");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return Number.NaN;
  }
}

export interface Sample {
  wallMs: number;
  cpuMs: number;
  /** CPU time of the main thread alone (the vCPU loop). */
  mainCpuMs: number;
}

/**
 * Launch (with `env` added to this process's environment), wait for the marker on stdout; resolves
 * to the times, or to a string saying why not.
 */
export function timeToMarker(
  cmd: string,
  argv: string[],
  env: Record<string, string> = {},
): Promise<Sample | string> {
  return new Promise((resolvePromise) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, argv, { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, ...env } });
    let out = "";
    let err = "";
    let done = false;
    const finish = (v: Sample | string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      child.kill("SIGKILL");
      resolvePromise(v);
    };
    const timer = setTimeout(() => finish("timeout"), TIMEOUT_MS);
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString("latin1");
      if (out.includes(MARKER))
        finish({
          wallMs: Number(process.hrtime.bigint() - t0) / 1e6,
          cpuMs: cpuMs(child.pid),
          mainCpuMs: cpuMs(child.pid, true),
        });
      if (out.length > 1 << 20) out = out.slice(-4096);
    });
    child.stderr.on("data", (d: Buffer) => {
      err += d.toString();
    });
    child.on("exit", (code) =>
      finish(`exited ${code} before the marker: ${err.trim().split("\n").pop() ?? ""}`),
    );
  });
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
