// Builds the native C oracles in test/oracle with the host's gcc into a temp dir and runs them
// over a batch of input lines. The oracles are the host CPU itself (these machines are x86-64).
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const here = new URL(".", import.meta.url).pathname;

/** True when gcc exists and the host is x86-64 (the oracles are x86 inline asm). */
export function haveOracle(): boolean {
  if (process.arch !== "x64") return false;
  return spawnSync("gcc", ["--version"]).status === 0;
}

/** Compile test/oracle/<name>.c; returns the executable's path. */
export function buildOracle(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), "tskvm-oracle-"));
  const exe = join(dir, name);
  execFileSync("gcc", ["-O1", "-mno-red-zone", "-o", exe, join(here, `${name}.c`), "-lm"], {
    stdio: "inherit",
  });
  return exe;
}

/** Run the oracle over the lines; returns one output line per input line. */
export function runOracle(exe: string, lines: string[]): string[] {
  const r = spawnSync(exe, [], { input: `${lines.join("\n")}\n`, maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`oracle failed: ${r.stderr}`);
  const out = r.stdout.toString().trimEnd().split("\n");
  if (out.length !== lines.length) throw new Error(`oracle gave ${out.length} lines for ${lines.length}`);
  return out;
}

/** Small seeded PRNG (xorshift32) so that vectors are reproducible. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 1;
  }
  u32(): number {
    let s = this.s;
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    this.s = s >>> 0;
    return this.s;
  }
  below(n: number): number {
    return this.u32() % n;
  }
  pick<T>(a: readonly T[]): T {
    return a[this.below(a.length)]!;
  }
}

export const hex = (v: number, w: number): string => (v >>> 0).toString(16).padStart(w, "0");
