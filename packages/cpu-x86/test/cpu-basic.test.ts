import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  Cpu,
  enterFlatLongMode,
  enterFlatProtectedMode,
  FlatMemory,
  IdentityTranslator,
  RunExit,
} from "../src/index.js";

function hex(s: string): number[] {
  return s
    .replace(/\s+/g, "")
    .match(/../g)!
    .map((b) => Number.parseInt(b, 16));
}

function long64(code: string, ramSize = 1 << 20): { cpu: Cpu; ram: Uint8Array } {
  const ram = new Uint8Array(ramSize);
  const cpu = new Cpu({ memory: new FlatMemory(ram), translator: new IdentityTranslator() });
  enterFlatLongMode(cpu, 0);
  ram.set(hex(code), 0x1000);
  cpu.ripLo = 0x1000;
  cpu.r[8] = 0x80000; // rsp
  return { cpu, ram };
}

describe("cpu basics", () => {
  it("runs real-mode code to HLT", () => {
    const ram = new Uint8Array(1 << 20);
    const cpu = new Cpu({ memory: new FlatMemory(ram) });
    ram.set([0xb8, 0x2a, 0x00, 0xf4], 0x7c00);
    cpu.setRealModeEntry(0, 0x7c00);
    expect(cpu.run(100)).toBe(RunExit.HLT);
    expect(cpu.r[0]).toBe(42);
    expect(cpu.ripLo).toBe(0x7c04);
  });

  it("runs a 64-bit loop with lazy flags", () => {
    // mov ecx, 10; xor eax, eax; l: add eax, ecx; dec ecx; jnz l; hlt
    const { cpu } = long64("b90a000000 31c0 01c8 ffc9 75fa f4");
    expect(cpu.run(1000)).toBe(RunExit.HLT);
    expect(cpu.r[0]).toBe(55);
  });

  it("64-bit arithmetic on halves: add rax, rbx with carry into the high half", () => {
    // mov rax, 0xffffffff; mov rbx, 1; add rax, rbx; hlt
    // mov eax, 0xffffffff (zero-extends); mov ebx, 1; add rax, rbx; hlt
    const { cpu } = long64("b8ffffffff bb01000000 4801d8 f4");
    cpu.run(100);
    expect(cpu.r[0]).toBe(0);
    expect(cpu.r[1]).toBe(1);
    expect(cpu.cf()).toBe(false);
  });

  it("self-modifying code: a store into the next instruction takes effect", () => {
    // lea rdi,[rip+target]; mov byte [rdi+1], 7; target: mov al, 1; hlt   -> al = 7
    // 48 8d 3d 03 00 00 00 ; c6 47 01 07 ; b0 01 ; f4
    const { cpu } = long64("488d3d04000000 c6470107 b001 f4");
    expect(cpu.run(100)).toBe(RunExit.HLT);
    expect(cpu.r[0]! & 0xff).toBe(7);
  });

  it("self-modifying code across runs: rewriting an already-decoded block", () => {
    const { cpu, ram } = long64("b001 f4");
    expect(cpu.run(10)).toBe(RunExit.HLT);
    expect(cpu.r[0]! & 0xff).toBe(1);
    // The guest rewrites its own code through a store.
    // mov byte [0x1001], 9; jmp 0x1000
    ram.set(hex("c604250110000009 e9f3efffff"), 0x2000);
    cpu.halted = false;
    cpu.ripLo = 0x2000;
    cpu.run(100);
    expect(cpu.r[0]! & 0xff).toBe(9);
  });

  it("REP MOVSB with overlapping forward copy replicates like an element loop (SDM MOVS)", () => {
    // rsi = 0x3000, rdi = 0x3001, rcx = 5000 (crosses pages); rep movsb; hlt
    const { cpu, ram } = long64("be00300000 bf01300000 b988130000 f3a4 f4");
    ram[0x3000] = 0xab;
    expect(cpu.run(1000)).toBe(RunExit.HLT);
    for (let k = 0x3000; k <= 0x3000 + 5000; k++) expect(ram[k]).toBe(0xab);
    expect(ram[0x3000 + 5001]).toBe(0);
    expect(cpu.r[2]).toBe(0);
    expect(cpu.r[12]).toBe(0x3000 + 5000);
  });

  it("REP STOSD fills across pages and REP MOVSQ copies", () => {
    // eax = 0x11223344; rdi = 0x5ffc; ecx = 3; rep stosd; rsi = 0x5ffc; rdi = 0x7000; ecx = 1; rep movsq; hlt
    const { cpu, ram } = long64(
      "b844332211 bffc5f0000 b903000000 f3ab befc5f0000 bf00700000 b901000000 f348a5 f4",
    );
    expect(cpu.run(1000)).toBe(RunExit.HLT);
    const dv = new DataView(ram.buffer);
    expect(dv.getUint32(0x5ffc, true)).toBe(0x11223344);
    expect(dv.getUint32(0x6004, true)).toBe(0x11223344);
    expect(dv.getUint32(0x6008, true)).toBe(0);
    expect(dv.getBigUint64(0x7000, true)).toBe(0x1122334411223344n);
  });

  it("x87 and SSE instructions run through the composed units (FLD/FADD/FSTP, FSQRT, ADDSD, PSHUFD, FXSAVE)", () => {
    const { cpu, ram } = long64(
      "dd042500300000dc042508300000dd1c2510300000db042518300000d9fadb1c251c300000f20f10042500300000f20f58042508300000f20f11042520300000f30f6f0c2500300000660f70d11bf30f7f1425303000000fae042500400000f4",
    );
    const dv = new DataView(ram.buffer);
    dv.setFloat64(0x3000, 1.5, true);
    dv.setFloat64(0x3008, 2.25, true);
    dv.setInt32(0x3018, 144, true);
    expect(cpu.run(100)).toBe(RunExit.HLT);
    expect(dv.getFloat64(0x3010, true)).toBe(3.75);
    expect(dv.getInt32(0x301c, true)).toBe(12);
    expect(dv.getFloat64(0x3020, true)).toBe(3.75);
    // PSHUFD 0x1b reverses the dwords of the 16 bytes at 0x3000.
    expect(dv.getUint32(0x3030, true)).toBe(dv.getUint32(0x300c, true));
    expect(dv.getUint32(0x303c, true)).toBe(dv.getUint32(0x3000, true));
    // FXSAVE: FCW at +0 is the default 0x037f, MXCSR at +24 is 0x1f80, XMM0 at +160 holds 3.75.
    expect(dv.getUint16(0x4000, true)).toBe(0x37f);
    expect(dv.getUint32(0x4000 + 24, true)).toBe(0x1f80);
    expect(dv.getFloat64(0x4000 + 160, true)).toBe(3.75);
  });

  it("SSE without CR4.OSFXSR is #UD, with CR0.TS is #NM (SDM Vol. 3 Table 2-2)", () => {
    const seen: number[] = [];
    for (const setup of [(c: Cpu) => (c.cr4 &= ~0x200), (c: Cpu) => (c.cr0 |= 8)]) {
      const { cpu } = long64("f20f58c1 f4"); // addsd xmm0, xmm1
      setup(cpu);
      cpu.hooks = {
        intercept: (kind, a) => {
          if (kind === 14) seen.push(a);
          return kind === 14;
        },
      };
      cpu.run(10);
    }
    expect(seen).toEqual([6, 7]);
  });

  it("the block compiler gives the interpreter's results (the bench/ programs, every block compiled)", () => {
    const bin = readFileSync(new URL("../bench/fixtures/cpu-programs.bin", import.meta.url));
    for (const entry of [0x10000, 0x11000, 0x12000, 0x13000, 0x14000]) {
      const runs = [true, false].map((jit) => {
        const ram = new Uint8Array(4 << 20);
        ram.set(bin, 0x10000);
        const cpu = new Cpu({
          memory: new FlatMemory(ram),
          translator: new IdentityTranslator(),
          jit,
          jitThreshold: 1,
          jitStraightThreshold: 1,
        });
        enterFlatLongMode(cpu, 0);
        cpu.ripLo = entry;
        cpu.r[8] = 0x80000;
        let exit: number;
        do exit = cpu.run(1_000_000);
        while (exit === RunExit.BUDGET);
        return {
          exit,
          regs: Array.from(cpu.r),
          rip: cpu.ripLo,
          n: cpu.executed,
          mem: ram.subarray(0x100000, 0x104000),
        };
      });
      expect(runs[0]!.regs).toEqual(runs[1]!.regs);
      expect(runs[0]!.rip).toBe(runs[1]!.rip);
      expect(runs[0]!.n).toBe(runs[1]!.n);
      expect(runs[0]!.exit).toBe(runs[1]!.exit);
      expect(Buffer.compare(runs[0]!.mem, runs[1]!.mem)).toBe(0);
    }
  });

  it("SDM Vol. 3 9.1.2.2: LOCK'd RMWs on shared memory go through Atomics and give the architected results", () => {
    const ram = new Uint8Array(new SharedArrayBuffer(1 << 20));
    const cpu = new Cpu({ memory: new FlatMemory(ram), translator: new IdentityTranslator() });
    enterFlatLongMode(cpu, 0);
    ram.set(
      hex(
        "48c7c300300000b805000000f00103b907000000f00fc14b04b800000000ba09000000f00fb1530866f00fba6b0e03f0fe431148b888776655443322114887431848be0000000001000000f0480fc17320f4",
      ),
      0x1000,
    );
    const dv = new DataView(ram.buffer);
    dv.setUint32(0x3000, 10, true);
    dv.setUint32(0x3004, 100, true);
    dv.setUint32(0x3008, 0, true);
    dv.setUint16(0x300e, 0x0001, true);
    ram[0x3011] = 0xff;
    dv.setBigUint64(0x3018, 42n, true);
    dv.setBigUint64(0x3020, 0xffffffffn, true);
    cpu.ripLo = 0x1000;
    const real = Atomics.compareExchange;
    let cas = 0;
    (Atomics as { compareExchange: unknown }).compareExchange = (...a: unknown[]) => {
      cas++;
      return (real as (...x: unknown[]) => unknown)(...a);
    };
    try {
      expect(cpu.run(100)).toBe(RunExit.HLT);
    } finally {
      (Atomics as { compareExchange: unknown }).compareExchange = real;
    }
    expect(cas).toBeGreaterThanOrEqual(6); // ADD, XADD, CMPXCHG, BTS, INC, XADD64 (XCHG64 too)
    expect(dv.getUint32(0x3000, true)).toBe(15);
    expect(dv.getUint32(0x3004, true)).toBe(107);
    expect(cpu.r[2]).toBe(100); // XADD returned the old value in ecx
    expect(dv.getUint32(0x3008, true)).toBe(9); // CMPXCHG matched eax = 0
    expect(dv.getUint16(0x300e, true)).toBe(0x0009); // BTS bit 3
    expect(ram[0x3011]).toBe(0); // INC byte wrapped
    expect(dv.getBigUint64(0x3018, true)).toBe(0x1122334455667788n); // XCHG with memory
    expect(cpu.r[0]).toBe(42);
    expect(dv.getBigUint64(0x3020, true)).toBe(0x1ffffffffn); // XADD 64-bit with carry between halves
    expect(cpu.r[12]).toBe(-1); // rsi low half = old 0xffffffff
  });

  it("division by zero delivers #DE through the IDT; a missing IDT becomes a triple fault", () => {
    const { cpu } = long64("31c9 f7f1 f4");
    cpu.idtrLimit = 0;
    expect(cpu.run(100)).toBe(RunExit.SHUTDOWN);
  });

  it("random bytes never throw out of run", () => {
    let seed = 12345;
    const rnd = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed >>> 24;
    };
    for (let t = 0; t < 400; t++) {
      const ram = new Uint8Array(1 << 16);
      for (let k = 0; k < ram.length; k++) ram[k] = rnd();
      const cpu = new Cpu({ memory: new FlatMemory(ram), translator: new IdentityTranslator() });
      // Real mode, 32-bit protected mode, 64-bit mode at CPL 0 and 3.
      const kind = t % 4;
      if (kind === 0) cpu.setRealModeEntry(0, 0x1000);
      else if (kind === 1) enterFlatProtectedMode(cpu);
      else enterFlatLongMode(cpu, kind === 2 ? 0 : 3);
      cpu.ripLo = 0x1000;
      const exit = cpu.run(2000);
      expect(exit, cpu.internalError).not.toBe(RunExit.INTERNAL_ERROR);
    }
  });
});
