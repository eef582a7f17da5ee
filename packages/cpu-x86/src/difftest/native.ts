/**
 * Builds the native harness with gcc (once, into a cache directory under the OS temp dir keyed by the
 * source's hash) and runs batches of snippets through it.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { encodeIn, IN_SIZE, OUT_SIZE, type SnippetIn } from "./records.js";

/** Finds difftest/harness.c from src/difftest or dist/. */
export function harnessSource(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let k = 0; k < 4; k++) {
    const p = join(dir, "difftest", "harness.c");
    if (existsSync(p)) return p;
    dir = dirname(dir);
  }
  throw new Error("difftest: harness.c not found");
}

/** Compiles the harness if needed and returns the binary's path. */
export function buildHarness(): string {
  const src = harnessSource();
  const text = readFileSync(src);
  const hash = createHash("sha256").update(text).digest("hex").slice(0, 16);
  const dir = join(tmpdir(), "tskvm-difftest");
  mkdirSync(dir, { recursive: true });
  const bin = join(dir, `harness-${hash}`);
  if (!existsSync(bin)) execFileSync("gcc", ["-O2", "-o", bin, src], { stdio: "inherit" });
  return bin;
}

/** Runs `snippets` natively; returns the concatenated output records. A snippet that kills or hangs the
 * harness is isolated by re-running the batch in halves, and reported with trapno -2. */
export function runNative(bin: string, snippets: SnippetIn[]): Uint8Array {
  const out = new Uint8Array(OUT_SIZE * snippets.length);
  runRange(bin, snippets, 0, snippets.length, out);
  return out;
}

function runRange(bin: string, snippets: SnippetIn[], from: number, to: number, out: Uint8Array): void {
  const n = to - from;
  const input = new Uint8Array(IN_SIZE * n);
  for (let i = 0; i < n; i++) encodeIn(snippets[from + i]!, input, i * IN_SIZE);
  const r = spawnSync(bin, [], { input, maxBuffer: OUT_SIZE * n + 1024, timeout: 10_000 + n * 2 });
  if (r.status === 0 && r.stdout.length === OUT_SIZE * n) {
    out.set(r.stdout, from * OUT_SIZE);
    return;
  }
  if (r.status === 2) throw new Error(`difftest: harness failed: ${r.stderr}`);
  if (n === 1) {
    // Crashed or hung on this snippet: mark it (trapno -2 at offset 404 of the record).
    const dv = new DataView(out.buffer, out.byteOffset + from * OUT_SIZE, OUT_SIZE);
    dv.setInt32(404, -2, true);
    return;
  }
  const mid = from + (n >> 1);
  runRange(bin, snippets, from, mid, out);
  runRange(bin, snippets, mid, to, out);
}
