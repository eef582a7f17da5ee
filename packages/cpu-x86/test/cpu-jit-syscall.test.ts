// SYSCALL/SYSRET in generated regions (jit-gen.ts `genSysTransfer`: a region goes on across them
// to its own blocks, with the CS/SS load, link epoch and access masks written out) against the
// interpreter: random loops of system calls whose kernel side returns with RFLAGS.TF, IF or AC
// changed, or with a non-canonical RCX, or writes IA32_STAR; between runs, IA32_FMASK, IA32_LSTAR
// and IA32_STAR changed, EFER.SCE cleared, CS/SS hidden parts made non-flat, the code page made a
// supervisor page (SYSRETQ's fetch faults), interrupts raised (held off while FMASK clears IF);
// CR4.SMEP with the code page a user page (the kernel entry's fetch faults), CR4.SMAP (kernel loads
// from the user stack fault unless AC), CR0.AM (misaligned user loads fault with AC); random budgets.
// After every `run` the two CPUs must agree on registers, RFLAGS, RIP, CPL, the CS/SS hidden parts,
// access masks, link epochs, the retired count, the exit and any exception or interrupt. Also INVLPG
// and a remap of the code page between system calls, the flat CS/SS load (`loadFlatCsSs`) against
// the general path (`segCache`, `updateMode`, `updateAccessMasks`), and SYSCALL's #UD outside
// 64-bit mode.
import { describe, expect, it } from "vitest";
import {
  AR,
  Cpu,
  CR0,
  CR4,
  EFER,
  enterFlatLongMode,
  FlatMemory,
  IdentityTranslator,
  InterceptKind,
  RunExit,
  Seg,
  TranslateFault,
  type TranslateResult,
} from "../src/index.js";
import { Rng } from "./oracle/build.js";

const CODE = 0x10000;
const KERNEL2 = 0x11000; // a second kernel entry, in another page
const RAM = 0x40000;
/** `msr64` slots (state.ts M64: star 0, lstar 1, fmask 3; lo at 2i, hi at 2i + 1). */
const STAR_HI = 1;
const LSTAR = 2;
const FMASK = 6;

function le32(v: number): number[] {
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
}

/**
 * A few forms on EAX, EBX, EDX, ESI (not RCX, R11, R12: the loop's own): 32- and 64-bit ALU, or a
 * misaligned stack load (#AC at CPL 3 with CR0.AM and RFLAGS.AC; a user page, so #PF at CPL 0 under
 * CR4.SMAP without RFLAGS.AC).
 */
function filler(g: Rng): number[] {
  const out: number[] = [];
  for (let k = g.below(4); k > 0; k--) {
    if (g.below(10) === 0) {
      out.push(0x8b, 0x44, 0x24, 0x01); // mov eax, [rsp + 1]
      continue;
    }
    // The flags of the last one reach SYSCALL's R11 (folded in, or through the CPU's lazy record).
    switch (g.below(9)) {
      case 0:
        out.push(0x05, ...le32(g.u32())); // add eax, imm32
        break;
      case 1:
        out.push(0x81, 0xc3, ...le32(g.u32())); // add ebx, imm32
        break;
      case 2:
        out.push(0x81, 0xf2, ...le32(g.u32())); // xor edx, imm32
        break;
      case 3:
        out.push(0x2d, ...le32(g.u32())); // sub eax, imm32
        break;
      case 4:
        out.push(0x48, 0x81, 0xc3, ...le32(g.u32())); // add rbx, imm32
        break;
      case 5:
        out.push(0x48, 0x81, 0xea, ...le32(g.u32())); // sub rdx, imm32
        break;
      case 6:
        out.push(0x48, 0xff, 0xce); // dec rsi
        break;
      case 7:
        // mov rbx, imm64 (low half 0); test rbx, rbx: ZF from both halves.
        out.push(0x48, 0xbb, 0, 0, 0, 0, ...le32(g.u32()), 0x48, 0x85, 0xdb);
        break;
      default:
        out.push(0xff, 0xc6); // inc esi
    }
  }
  return out;
}

interface Program {
  ram: Uint8Array;
  kernel: number;
  smep: boolean;
  /** CR4.SMAP and CR0.AM from the start. */
  smap: boolean;
  am: boolean;
  count: number;
}

/**
 * User loop at CODE: filler; SYSCALL; DEC R12D; JNZ loop; HLT. Kernel entry in the same page: filler,
 * then maybe OR R11D, 0x100 (TF back on at SYSRET), XOR R11D, 0x200 (IF flipped), BTS RCX, 47 (a
 * non-canonical return address: #GP(0) at CPL 0), OR R11D, R9D; OR RCX, R10; SYSRETQ. A copy of the
 * kernel at KERNEL2.
 */
function program(g: Rng): Program {
  const ram = new Uint8Array(RAM);
  const user = [...filler(g), 0x0f, 0x05, 0x41, 0xff, 0xcc];
  user.push(0x0f, 0x85, ...le32(-(user.length + 6)), 0xf4);
  const kern = filler(g);
  if (g.below(8) === 0) kern.push(0x41, 0x81, 0xcb, ...le32(0x100)); // or r11d, TF
  if (g.below(4) === 0) kern.push(0x41, 0x81, 0xf3, ...le32(0x200)); // xor r11d, IF
  if (g.below(4) === 0) kern.push(0x41, 0x81, 0xcb, ...le32(0x40000)); // or r11d, AC
  if (g.below(12) === 0) {
    // A new IA32_STAR inside the loop: mov r13, rcx; mov ecx, 0xC0000081; mov edx, 0x00200030; wrmsr;
    // mov rcx, r13 (SYSCALL CS 0x30, SS 0x38; SYSRET CS 0x33, SS 0x2b from then on).
    kern.push(
      0x49,
      0x89,
      0xcd,
      0xb9,
      ...le32(0xc0000081),
      0xba,
      ...le32(0x00200030),
      0x0f,
      0x30,
      0x4c,
      0x89,
      0xe9,
    );
  }
  if (g.below(10) === 0) kern.push(0x48, 0x0f, 0xba, 0xe9, 47); // bts rcx, 47
  // or r11d, r9d; or rcx, r10: TF or a non-canonical RCX once the test sets r9 or r10 between runs,
  // when the loop already runs in its region.
  kern.push(0x45, 0x09, 0xcb, 0x4d, 0x09, 0xd1);
  kern.push(0x48, 0x0f, 0x07); // sysretq
  const kernel = CODE + 0x100 + g.below(0x100);
  ram.set(user, CODE);
  ram.set(kern, kernel);
  ram.set(kern, KERNEL2);
  return {
    ram,
    kernel,
    smep: g.below(12) === 0,
    smap: g.below(6) === 0,
    am: g.below(3) === 0,
    count: 1 + g.below(400),
  };
}

function runProgram(p: Program, jit: boolean, g: Rng): string[] {
  const ram = p.ram.slice();
  let event = "";
  // Set between runs: the code page becomes a supervisor page (from the kernel side, SYSRETQ's fetch
  // at CPL 3 faults; from the user side, the next fetch).
  let supPage = false;
  const cpu = new Cpu({
    memory: new FlatMemory(ram),
    translator: {
      translate(lo: number, hi: number, _access: number, out: TranslateResult): boolean {
        out.paddr = lo >>> 0;
        out.writable = true;
        out.user = !supPage || lo >>> 12 !== CODE >>> 12;
        out.nx = false;
        out.global = false;
        out.pageSize = 4096;
        out.fault = hi === 0 ? TranslateFault.NONE : TranslateFault.PAGE_FAULT;
        return hi === 0;
      },
    },
    intercepts: {
      intercept(kind: number, a: number, b: number): boolean {
        if (kind === InterceptKind.EXCEPTION) event = `#${a}(${b})`;
        else if (kind === InterceptKind.EXTERNAL_INTERRUPT) event = "irq";
        else return false;
        return true;
      },
    },
    jit,
    jitThreshold: 1,
    jitStraightThreshold: 1,
  });
  enterFlatLongMode(cpu, 3);
  if (p.smep) cpu.cr4 |= CR4.SMEP;
  if (p.smap) cpu.cr4 |= CR4.SMAP;
  if (p.am) cpu.cr0 |= CR0.AM;
  cpu.updateAccessMasks();
  cpu.r[24] = p.count; // r12
  cpu.r[8] = 0x30000;
  cpu.msr64[STAR_HI] = (0x10 << 16) | 0x08; // SYSCALL CS 0x08, SS 0x10; SYSRET CS 0x23, SS 0x1b
  cpu.msr64[LSTAR] = p.kernel;
  cpu.msr64[FMASK] = [0, 0x200, 0x100 | 0x200 | 0x400, 0x40000][g.below(4)]!;
  cpu.ripLo = CODE;
  const log: string[] = [];
  for (let k = 0; k < 14; k++) {
    const budget = g.below(3) === 0 ? 1 + g.below(7) : 20 + g.below(900);
    // Between runs: an interrupt request, a new FMASK, LSTAR or STAR.
    const change = g.below(10);
    if (change === 0) cpu.irqPending = true;
    if (change === 1) cpu.msr64[FMASK] ^= 0x200;
    if (change === 2) cpu.msr64[LSTAR] = cpu.msr64[LSTAR] === KERNEL2 ? p.kernel : KERNEL2;
    if (change === 3) cpu.msr64[STAR_HI] = (0x20 << 16) | 0x30;
    if (change === 4 && g.below(3) === 0) {
      cpu.cr4 |= CR4.SMEP;
      cpu.updateAccessMasks();
      cpu.flushTranslations();
    }
    if (change === 5 && g.below(3) === 0) cpu.r[18] = 0x100; // r9: TF
    if (change === 6 && g.below(3) === 0) cpu.r[21] = 0x8000; // r10 high half: RCX non-canonical
    if (change === 7 && g.below(3) === 0) {
      supPage = true;
      cpu.flushTranslations();
    }
    if (change === 9 && g.below(4) === 0) cpu.efer &= ~EFER.SCE; // the next SYSCALL or SYSRET: #UD
    if (change === 8) {
      // CS and SS hidden parts not flat (a CS limit of 0xFFFFF, an SS base, which 64-bit mode
      // ignores): the next SYSCALL or SYSRET loads them flat and moves the link epoch.
      cpu.segLimit[Seg.CS] = 0xfffff;
      cpu.segBaseLo[Seg.SS] = 0x1000;
      cpu.updateMode();
    }
    event = "";
    const exit = cpu.run(budget);
    // The whole hidden parts, the access masks and the link epochs: generated code writes them itself.
    const seg = [Seg.CS, Seg.SS]
      .map(
        (s) =>
          `${cpu.segSel[s]}/${cpu.segAttr[s]}/${cpu.segBaseLo[s]}/${cpu.segBaseHi[s]}/${cpu.segLimit[s]}/${cpu.segAcc[s]}`,
      )
      .join(" ");
    const masks = [cpu.rMask, cpu.wMask, cpu.xMask, cpu.rNeed, cpu.wNeed, cpu.acCheck, cpu.stackSize];
    log.push(
      `exit ${exit} ${event} n=${cpu.executed} rip=${(cpu.ripLo >>> 0).toString(16)}:${cpu.ripHi} cpl=${cpu.cpl} mode=${cpu.codeMode} ${seg} masks=${masks.join(",")} ep=${cpu.linkEpoch},${cpu.globalLinkEpoch} fl=${cpu.getRflags().toString(16)} r=${Array.from(cpu.r, (v) => (v >>> 0).toString(16)).join(",")}`,
    );
    if (event === "irq") {
      cpu.irqPending = false;
      continue;
    }
    if (exit !== RunExit.BUDGET) break;
  }
  return log;
}

describe("SYSCALL/SYSRET in generated regions vs the interpreter", () => {
  it("random system-call loops: same state after every run(), with TF, IF, AC, #GP, #PF, #AC, interrupts, IA32_STAR writes", () => {
    const g = new Rng(0x5eca11);
    const events = new Set<string>();
    for (let t = 0; t < 300; t++) {
      const p = program(g);
      const seed = g.u32() || 1;
      const a = runProgram(p, true, new Rng(seed));
      const b = runProgram(p, false, new Rng(seed));
      expect(a, `program ${t}`).toEqual(b);
      for (const line of a) events.add(line.split(" ")[2]!);
    }
    // The generator reaches every outcome it is written for.
    // #14(21): SYSRETQ's fetch from a supervisor page; #14(1): a kernel load from a user page under
    // SMAP; #17(0): a misaligned user load with CR0.AM and the AC that R11 gave back.
    for (const e of ["#1(-1)", "#6(-1)", "#13(0)", "#14(17)", "#14(21)", "#14(1)", "#17(0)", "irq"])
      expect(events).toContain(e);
  });

  it("SDM INVLPG: a SYSRETQ after INVLPG of the code page fetches through the new translation", () => {
    const jit = runRemap(true);
    expect(jit).toBe(runRemap(false));
    // Round trips of 6 instructions (R12 even) and 8 (odd: OUT, INVLPG); the 300th OUT comes in the
    // 600th, with R12 = 4401, whose SYSRETQ returns to the HLT.
    const n = 300 * 6 + 299 * 8 + 6;
    expect(jit).toBe(
      `exit ${RunExit.INTERCEPT} #13(0) n=${n} rip=${(CODE + 2).toString(16)} cpl=3 r12=4401 outs=300`,
    );
  });

  it("a long loop stays correct across many round trips inside one region", () => {
    // syscall; dec r12d; jnz; hlt / kernel: add ebx, 1; sysretq. HLT at CPL 3 is #GP(0).
    const ram = new Uint8Array(RAM);
    ram.set([0x0f, 0x05, 0x41, 0xff, 0xcc, 0x0f, 0x85, ...le32(-11), 0xf4], CODE);
    ram.set([0x81, 0xc3, ...le32(1), 0x48, 0x0f, 0x07], CODE + 0x80);
    let event = "";
    const cpu = new Cpu({
      memory: new FlatMemory(ram),
      translator: new IdentityTranslator(),
      intercepts: {
        intercept(kind: number, a: number, b: number): boolean {
          if (kind !== InterceptKind.EXCEPTION) return false;
          event = `#${a}(${b})`;
          return true;
        },
      },
      jitThreshold: 1,
      jitStraightThreshold: 1,
    });
    enterFlatLongMode(cpu, 3);
    cpu.msr64[STAR_HI] = (0x10 << 16) | 0x08;
    cpu.msr64[LSTAR] = CODE + 0x80;
    cpu.r[24] = 50_000;
    cpu.ripLo = CODE;
    let exit: RunExit = RunExit.BUDGET;
    for (let k = 0; k < 1000 && exit === RunExit.BUDGET; k++) exit = cpu.run(777);
    expect([exit, event, cpu.ripLo]).toEqual([RunExit.INTERCEPT, "#13(0)", CODE + 11]);
    // Each round trip: SYSCALL, ADD, SYSRETQ, DEC, JNZ.
    expect(cpu.executed).toBe(5 * 50_000);
    expect(cpu.r[6]).toBe(50_000); // ebx
    expect(cpu.cpl).toBe(3);
    expect(cpu.segSel[Seg.CS]).toBe(0x23);
    expect(cpu.segSel[Seg.SS]).toBe(0x1b);
  });
});

/**
 * User: syscall; dec r12d; jnz; hlt. Kernel: every other call (R12 odd) OUT 0x80 and INVLPG of the
 * code page, then SYSRETQ. The 300th OUT remaps the code page's linear address to a copy whose
 * return address holds HLT (#GP(0) at CPL 3): the SYSRETQ after that INVLPG must fetch through the
 * new translation, while the other round trips run in generated regions (INVLPG ends its block, so
 * the SYSRETQ after it starts a new region run, which looks the code page up again).
 */
function runRemap(jit: boolean): string {
  const ALT = 0x20000;
  const ram = new Uint8Array(RAM);
  ram.set([0x0f, 0x05, 0x41, 0xff, 0xcc, 0x0f, 0x85, ...le32(-11), 0xf4], CODE);
  const kernel = CODE + 0x80;
  // test r12d, 1; jz +9; out 0x80, al; invlpg [rip - 0x92] (CODE); sysretq
  ram.set([0x41, 0xf7, 0xc4, ...le32(1), 0x74, 0x09, 0xe6, 0x80, 0x0f, 0x01, 0x3d, ...le32(-0x92)], kernel);
  ram.set([0x48, 0x0f, 0x07], kernel + 18);
  ram.copyWithin(ALT, CODE, CODE + 4096);
  ram[ALT + 2] = 0xf4;
  let outs = 0;
  let event = "";
  const cpu = new Cpu({
    memory: new FlatMemory(ram),
    translator: {
      translate(lo: number, hi: number, _access: number, out: TranslateResult): boolean {
        const remap = outs >= 300 && lo >>> 12 === CODE >>> 12;
        out.paddr = remap ? ALT + (lo & 4095) : lo >>> 0;
        out.writable = true;
        out.user = true;
        out.nx = false;
        out.global = false;
        out.pageSize = 4096;
        out.fault = hi === 0 ? TranslateFault.NONE : TranslateFault.PAGE_FAULT;
        return hi === 0;
      },
    },
    io: { in: () => 0, out: () => void outs++ },
    intercepts: {
      intercept(kind: number, a: number, b: number): boolean {
        if (kind !== InterceptKind.EXCEPTION) return false;
        event = `#${a}(${b})`;
        return true;
      },
    },
    jit,
    jitThreshold: 1,
    jitStraightThreshold: 1,
  });
  enterFlatLongMode(cpu, 3);
  cpu.msr64[STAR_HI] = (0x10 << 16) | 0x08;
  cpu.msr64[LSTAR] = kernel;
  cpu.r[24] = 5000;
  cpu.ripLo = CODE;
  let exit: RunExit = RunExit.BUDGET;
  for (let k = 0; k < 100 && exit === RunExit.BUDGET; k++) exit = cpu.run(1000);
  return `exit ${exit} ${event} n=${cpu.executed} rip=${(cpu.ripLo >>> 0).toString(16)} cpl=${cpu.cpl} r12=${cpu.r[24]} outs=${outs}`;
}

describe("SYSCALL and SYSRET state", () => {
  it("loadFlatCsSs gives what segCache, updateMode and updateAccessMasks give for the same load", () => {
    const code64 = AR.P | AR.S | AR.CODE | AR.RW | AR.ACCESSED | AR.L | AR.G;
    const code32 = AR.P | AR.S | AR.CODE | AR.RW | AR.ACCESSED | AR.DB | AR.G;
    const data = AR.P | AR.S | AR.RW | AR.ACCESSED | AR.DB | AR.G;
    const dpl3 = 3 << AR.DPL_SHIFT;
    const cases: [number, number, number][] = [
      [code64, data, 0],
      [code64 | dpl3, data | dpl3, 3],
      [code32 | dpl3, data | dpl3, 3],
      [code32, data, 0],
    ];
    for (const lma of [true, false])
      for (const ac of [false, true])
        for (const [cs, ss, cpl] of cases) {
          const fast = new Cpu({ memory: new FlatMemory(new Uint8Array(4096)) });
          const slow = new Cpu({ memory: new FlatMemory(new Uint8Array(4096)) });
          for (const c of [fast, slow]) {
            enterFlatLongMode(c, 0);
            if (!lma) c.efer &= ~EFER.LMA;
            c.cr0 |= 1 << 18; // AM
            c.cr4 |= CR4.SMAP;
            c.setRflags(c.getRflags() | (ac ? 1 << 18 : 0));
          }
          fast.loadFlatCsSs(0x2b, cs, 0x23, ss, cpl);
          for (const [s, sel, attr] of [
            [Seg.CS, 0x2b, cs],
            [Seg.SS, 0x23, ss],
          ] as const) {
            slow.segSel[s] = sel;
            slow.segBaseLo[s] = 0;
            slow.segBaseHi[s] = 0;
            slow.segLimit[s] = -1;
            slow.segAttr[s] = attr;
            slow.segCache(s);
          }
          slow.updateModeKeepCpl(cpl);
          const view = (c: Cpu) => ({
            seg: [...c.segSel, ...c.segBaseLo, ...c.segBaseHi, ...c.segLimit, ...c.segAttr, ...c.segAcc],
            mode: [c.cpl, c.codeMode, c.stackSize, c.linkEpoch],
            masks: [c.rMask, c.wMask, c.xMask, c.rNeed, c.wNeed, c.acCheck],
          });
          expect(view(fast), `lma ${lma} ac ${ac} cs ${cs.toString(16)} cpl ${cpl}`).toEqual(view(slow));
        }
  });

  it("SDM SYSCALL: #UD in compatibility mode (Intel), CS.L = 0", () => {
    const ram = new Uint8Array(0x20000);
    ram.set([0x0f, 0x05], CODE);
    let event = "";
    const cpu = new Cpu({
      memory: new FlatMemory(ram),
      translator: new IdentityTranslator(),
      intercepts: {
        intercept(kind: number, a: number): boolean {
          if (kind !== InterceptKind.EXCEPTION) return false;
          event = `#${a}`;
          return true;
        },
      },
    });
    enterFlatLongMode(cpu, 3);
    cpu.segAttr[Seg.CS] = (cpu.segAttr[Seg.CS]! & ~AR.L) | AR.DB;
    cpu.updateMode();
    cpu.ripLo = CODE;
    expect(cpu.codeMode).toBe(32);
    expect(cpu.run(1)).toBe(RunExit.INTERCEPT);
    expect(event).toBe("#6");
    expect(cpu.cpl).toBe(3);
  });
});
