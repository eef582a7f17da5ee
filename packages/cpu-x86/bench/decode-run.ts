// Plain-node decode benchmark: `npm run bench:decode -w @tskvm/cpu-x86` (built with esbuild).
// Prints instructions decoded per second for the kernel's code (linear sweep) and random bytes.
import { loadavg } from "node:os";
import { DecodeStatus, decode, formatIntel, Insn } from "../src/index.js";
import { randomBytes, realisticCode, withoutPadding } from "./decode-input.js";

function sweep(bytes: Uint8Array, mode: 16 | 32 | 64, insn: Insn): number {
  let n = 0;
  let off = 0;
  const end = bytes.length;
  while (off < end) {
    const st = decode(bytes, off, mode, insn);
    off += st === DecodeStatus.Ok ? insn.length : 1;
    n++;
  }
  return n;
}

function rate(label: string, bytes: Uint8Array, mode: 16 | 32 | 64, rounds: number): void {
  const insn = new Insn();
  sweep(bytes, mode, insn); // warm-up
  let n = 0;
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  for (let r = 0; r < rounds; r++) n += sweep(bytes, mode, insn);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  const cu = process.cpuUsage(c0);
  const cs = (cu.user + cu.system) / 1e6;
  // Wall time counts the time other processes held the core; CPU time is this process's own.
  console.log(
    `${label.padEnd(44)} ${(n / s / 1e6).toFixed(1).padStart(6)} M/s wall ${(n / cs / 1e6).toFixed(1).padStart(6)} M/s CPU (${n} decodes)`,
  );
}

const raw = realisticCode();
const code = { name: `${raw.name} without INT3 padding`, bytes: withoutPadding(raw.bytes) };
console.log(
  `realistic input: ${code.name}, ${code.bytes.length} bytes; load average ${loadavg()[0]!.toFixed(1)}`,
);
rate(`decode, ${code.name}, 64-bit`, code.bytes, 64, 5);
const rnd = randomBytes(4 << 20);
for (const m of [64, 32, 16] as const) rate(`decode, random bytes, ${m}-bit`, rnd, m, 5);
{
  const insn = new Insn();
  const bytes = code.bytes.subarray(0, 1 << 20);
  let n = 0;
  let off = 0;
  const t0 = process.hrtime.bigint();
  while (off < bytes.length) {
    const st = decode(bytes, off, 64, insn);
    formatIntel(insn, off);
    off += st === DecodeStatus.Ok ? insn.length : 1;
    n++;
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(
    `${"decode + formatIntel, kernel 1 MiB, 64-bit".padEnd(44)} ${(n / s / 1e6).toFixed(2).padStart(6)} M/s`,
  );
}
