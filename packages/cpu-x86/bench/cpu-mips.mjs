#!/usr/bin/env node
// Guest MIPS of the cpu-x86 interpreter on small guest programs (bench/fixtures/cpu-programs.S).
// Run: cd packages/cpu-x86 && npx tsup && node bench/cpu-mips.mjs
import { readFileSync } from "node:fs";
import { Cpu, enterFlatLongMode, FlatMemory, IdentityTranslator, RunExit } from "../dist/index.js";

const bin = readFileSync(new URL("./fixtures/cpu-programs.bin", import.meta.url));
const programs = [
  ["integer loop", 0x10000],
  ["memcpy (8-byte moves)", 0x11000],
  ["insertion sort", 0x12000],
  ["CRC-32 (bitwise)", 0x13000],
  ["SYSCALL/SYSRET loop", 0x14000],
  ["REP MOVSB 1 MiB x 8", 0x15000, 8 << 20],
];

function runOnce(entry) {
  const ram = new Uint8Array(4 << 20);
  ram.set(bin, 0x10000);
  const cpu = new Cpu({ memory: new FlatMemory(ram), translator: new IdentityTranslator() });
  enterFlatLongMode(cpu, 0);
  cpu.ripLo = entry;
  cpu.r[8] = 0x80000;
  const start = cpu.executed;
  const t0 = process.hrtime.bigint();
  let exit;
  do exit = cpu.run(10_000_000);
  while (exit === RunExit.BUDGET);
  const ns = Number(process.hrtime.bigint() - t0);
  return { insns: cpu.executed - start, ns, exit };
}

console.log("program                    guest insns    time ms    guest MIPS");
for (const [name, entry, bytes] of programs) {
  runOnce(entry); // warm-up
  let best = null;
  for (let k = 0; k < 3; k++) {
    const r = runOnce(entry);
    if (!best || r.ns < best.ns) best = r;
  }
  const mips = best.insns / (best.ns / 1000);
  const extra = bytes ? `   (${((bytes / best.ns) * 1e3).toFixed(0)} MB/s copied)` : "";
  console.log(
    `${name.padEnd(26)} ${String(best.insns).padStart(11)} ${(best.ns / 1e6).toFixed(1).padStart(10)} ${mips.toFixed(1).padStart(13)}${extra}`,
  );
}
