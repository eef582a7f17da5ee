#!/usr/bin/env node
// Guest MIPS of the cpu-x86 interpreter on small guest programs (bench/fixtures/cpu-programs.S).
// Run: cd packages/cpu-x86 && npx tsup && node bench/cpu-mips.mjs [--no-jit]  (--no-jit: interpreter only)
import { readFileSync } from "node:fs";
import { Cpu, CR4, enterFlatLongMode, FlatMemory, IdentityTranslator, RunExit } from "../dist/index.js";

const jit = !process.argv.includes("--no-jit");
const bin = readFileSync(new URL("./fixtures/cpu-programs.bin", import.meta.url));
const programs = [
  ["integer loop", 0x10000],
  ["memcpy (8-byte moves)", 0x11000],
  ["insertion sort", 0x12000],
  ["CRC-32 (bitwise)", 0x13000],
  ["SYSCALL/SYSRET loop", 0x14000],
  ["REP MOVSB 1 MiB x 8", 0x15000, 8 << 20],
];

function newCpu() {
  const ram = new Uint8Array(4 << 20);
  ram.set(bin, 0x10000);
  return new Cpu({ memory: new FlatMemory(ram), translator: new IdentityTranslator(), jit });
}

/** Runs the program at `entry` to its HLT on `cpu` (from ring 0, flat long mode). */
function runOn(cpu, entry) {
  enterFlatLongMode(cpu, 0);
  cpu.halted = false;
  cpu.shutdown = false;
  cpu.ripLo = entry;
  cpu.ripHi = 0;
  cpu.r[8] = 0x80000;
  const start = cpu.executed;
  const t0 = process.hrtime.bigint();
  let exit;
  do exit = cpu.run(10_000_000);
  while (exit === RunExit.BUDGET);
  const ns = Number(process.hrtime.bigint() - t0);
  // The SYSCALL loop ends with HLT at CPL 3 after its last SYSRET: #GP with no IDT, a shutdown.
  if (exit !== RunExit.HLT && exit !== RunExit.SHUTDOWN) throw new Error(`program ended with ${exit}`);
  return { insns: cpu.executed - start, ns, exit };
}

// "fresh": a new CPU per run (decoding, compiling and V8's warm-up included), best of 3 after a
// warm-up run. "warm": one CPU runs the program 10 times, keeping its decoded and compiled code;
// the best of the last 5 (the steady state of the generated code).
console.log("program                    guest insns    fresh ms  fresh MIPS   warm MIPS");
for (const [name, entry, bytes] of programs) {
  runOn(newCpu(), entry); // warm-up
  let best = null;
  for (let k = 0; k < 3; k++) {
    const r = runOn(newCpu(), entry);
    if (!best || r.ns < best.ns) best = r;
  }
  const cpu = newCpu();
  let warm = null;
  for (let k = 0; k < 10; k++) {
    const r = runOn(cpu, entry);
    if (k >= 5 && (!warm || r.ns < warm.ns)) warm = r;
  }
  const mips = best.insns / (best.ns / 1000);
  const wm = warm.insns / (warm.ns / 1000);
  const extra = bytes ? `   (${((bytes / best.ns) * 1e3).toFixed(0)} MB/s copied)` : "";
  console.log(
    `${name.padEnd(26)} ${String(best.insns).padStart(11)} ${(best.ns / 1e6).toFixed(1).padStart(10)} ${mips.toFixed(1).padStart(11)} ${wm.toFixed(1).padStart(11)}${extra}`,
  );
}

// Paged: the built-in PageWalker over 4-level tables (4 KiB pages, identity map of 4 MiB). Each outer
// iteration reads one qword from each of 256 pages, then reloads CR3 (a context switch): with global
// pages and CR4.PGE the translations survive the reload (SDM Vol. 3 4.10.4.1), without them all 256
// pages are walked again.
// outer: mov esi, 0x100000; mov edx, 256
// inner: mov rax, [rsi]; add rsi, 4096; dec edx; jnz inner
//        mov rax, cr3; mov cr3, rax; dec ecx; jnz outer; hlt
const PAGED_CODE = [
  0xb9, 0x10, 0x27, 0x00, 0x00, 0xbe, 0x00, 0x00, 0x10, 0x00, 0xba, 0x00, 0x01, 0x00, 0x00, 0x48, 0x8b, 0x06,
  0x48, 0x81, 0xc6, 0x00, 0x10, 0x00, 0x00, 0xff, 0xca, 0x75, 0xf2, 0x0f, 0x20, 0xd8, 0x0f, 0x22, 0xd8, 0xff,
  0xc9, 0x75, 0xde, 0xf4,
];

function runPaged(global) {
  const ram = new Uint8Array(8 << 20);
  const dv = new DataView(ram.buffer);
  const pte = (at, v) => dv.setUint32(at, v, true);
  pte(0x1000, 0x2003); // PML4 -> PDPT
  pte(0x2000, 0x3003); // PDPT -> PD
  for (let t = 0; t < 2; t++) {
    pte(0x3000 + t * 8, (0x4000 + t * 0x1000) | 3); // PD -> PT
    for (let p = 0; p < 512; p++)
      pte(0x4000 + t * 0x1000 + p * 8, ((t * 512 + p) << 12) | 3 | (global ? 0x100 : 0));
  }
  ram.set(PAGED_CODE, 0x20000);
  const cpu = new Cpu({ memory: new FlatMemory(ram), jit });
  enterFlatLongMode(cpu, 0);
  cpu.cr4 |= CR4.PGE;
  cpu.cr3Lo = 0x1000;
  cpu.tlbFlushAll();
  cpu.ripLo = 0x20000;
  const t0 = process.hrtime.bigint();
  let exit;
  do exit = cpu.run(10_000_000);
  while (exit === RunExit.BUDGET);
  return { insns: cpu.executed, ns: Number(process.hrtime.bigint() - t0), exit };
}

for (const [name, global] of [
  ["paged, MOV CR3, global", true],
  ["paged, MOV CR3, non-global", false],
]) {
  runPaged(global);
  let best = null;
  for (let k = 0; k < 3; k++) {
    const r = runPaged(global);
    if (r.exit !== RunExit.HLT) throw new Error(`paged run ended with ${r.exit}`);
    if (!best || r.ns < best.ns) best = r;
  }
  const mips = best.insns / (best.ns / 1000);
  console.log(
    `${name.padEnd(26)} ${String(best.insns).padStart(11)} ${(best.ns / 1e6).toFixed(1).padStart(10)} ${mips.toFixed(1).padStart(13)}`,
  );
}
