// FERR# and IGNNE#: x87 error reporting with CR0.NE = 0, the PC-compatible ("MS-DOS compatibility")
// scheme of SDM Vol. 1 8.7 and D.2.1. The platform below is the IBM AT wiring the SDM describes:
// FERR# raises IRQ13, a write to port F0H asserts IGNNE#, which holds until FERR# goes away. Real mode
// at reset has CR0.NE = 0, as DOS ran.
import { describe, expect, it } from "vitest";
import { Cpu, CR0, FlatMemory, RunExit } from "../src/index.js";

const ENTRY = 0x7c00;
const HANDLER = 0x8000;
const CW = 0x9000;
/** IRQ13's vector behind the AT's second 8259 (base 70H). */
const IRQ13 = 0x75;
// fninit; fldcw [bx] (CW 0x37b: ZE unmasked); fld1; fldz; fdivp st(1) -> ZE pending (SW.ES)
const SETUP = [0xdb, 0xe3, 0xd9, 0x2f, 0xd9, 0xe8, 0xd9, 0xee, 0xde, 0xf9];
const FLD1 = [0xd9, 0xe8];
const FNCLEX = [0xdb, 0xe2];
const FNINIT = [0xdb, 0xe3];
const OUT_F0 = [0xe6, 0xf0]; // out 0xf0, al
const IRET = [0xcf];
const HLT = [0xf4];

interface Pc {
  cpu: Cpu;
  ram: Uint8Array;
  /** FERR# changes, IRQ13 acknowledgements and port F0H writes, in order. */
  log: string[];
}

/** A real-mode PC; `irq13` false leaves FERR# unconnected to the interrupt controller. */
function pc(code: number[], handler: number[], irq13 = true): Pc {
  const ram = new Uint8Array(1 << 20);
  const log: string[] = [];
  const cpu: Cpu = new Cpu({
    memory: new FlatMemory(ram),
    io: {
      in: () => 0xff,
      out: (port) => {
        if (port !== 0xf0) return;
        log.push("outF0");
        cpu.ignne = true;
      },
    },
    interrupts: {
      acknowledge: () => {
        cpu.irqPending = false;
        log.push("irq13");
        return IRQ13;
      },
    },
    ferr: {
      set: (asserted) => {
        log.push(asserted ? "ferr+" : "ferr-");
        if (asserted && irq13) cpu.irqPending = true;
        if (!asserted) cpu.ignne = false;
      },
    },
  });
  ram.set([HANDLER & 0xff, HANDLER >> 8, 0, 0], IRQ13 * 4);
  ram.set([0x00, 0xa0, 0, 0], 16 * 4); // #MF -> 0000:A000 (hlt)
  ram[0xa000] = 0xf4;
  ram.set(handler, HANDLER);
  ram.set(code, ENTRY);
  new DataView(ram.buffer).setUint16(CW, 0x37b, true);
  cpu.setRealModeEntry(0, ENTRY);
  cpu.r[3 * 2] = CW; // bx
  cpu.r[4 * 2] = 0x7000; // sp
  cpu.setRflags(0x202); // IF = 1
  expect(cpu.cr0 & CR0.NE).toBe(0);
  return { cpu, ram, log };
}

/** TOP of the x87 stack and SW.ES. */
function x87(cpu: Cpu): { top: number; es: boolean } {
  const sw = cpu.fpUnits.x87.getSw();
  return { top: (sw >> 11) & 7, es: (sw & 0x80) !== 0 };
}

describe("FERR# with CR0.NE = 0 (SDM Vol. 1 8.7, D.2.1)", () => {
  it("a waiting x87 instruction with a pending exception takes no #MF: FERR# is asserted and the CPU waits before it", () => {
    const { cpu, log } = pc([...SETUP, ...FLD1, ...HLT], [], false);
    expect(cpu.run(1000)).toBe(RunExit.HLT);
    expect(log).toEqual(["ferr+"]);
    expect(cpu.ripLo).toBe(ENTRY + SETUP.length); // at the waiting FLD1, which has not run
    expect(x87(cpu)).toEqual({ top: 6, es: true }); // as SETUP left it (the unmasked #Z kept FDIVP from popping)
    expect(cpu.ferrAsserted).toBe(true);
    // Nothing wakes it: it keeps waiting.
    expect(cpu.run(1000)).toBe(RunExit.HLT);
    expect(cpu.ripLo).toBe(ENTRY + SETUP.length);
  });

  for (const [name, clear] of [
    ["FNCLEX", FNCLEX],
    ["FNINIT", FNINIT],
  ] as const)
    it(`the IRQ13 handler (OUT F0H, ${name}, IRET) returns to the waiting instruction, which runs; FERR# goes at ${name}`, () => {
      const { cpu, log } = pc([...SETUP, ...FLD1, ...HLT], [...OUT_F0, ...clear, ...IRET]);
      expect(cpu.run(1000)).toBe(RunExit.HLT);
      expect(log).toEqual(["ferr+", "irq13", "outF0", "ferr-"]);
      expect(cpu.ripLo).toBe(ENTRY + SETUP.length + FLD1.length + 1);
      expect(x87(cpu).es).toBe(false);
      expect(cpu.ferrAsserted).toBe(false);
      expect(cpu.ignne).toBe(false);
    });

  it("IGNNE#: a handler that only writes port F0H returns to the instruction, which runs with the exception still pending; FERR# stays", () => {
    const { cpu, log } = pc([...SETUP, ...FLD1, ...HLT], [...OUT_F0, ...IRET]);
    expect(cpu.run(1000)).toBe(RunExit.HLT);
    expect(log).toEqual(["ferr+", "irq13", "outF0"]);
    expect(cpu.ripLo).toBe(ENTRY + SETUP.length + FLD1.length + 1);
    expect(x87(cpu)).toEqual({ top: 5, es: true }); // FLD1 pushed
    expect(cpu.ferrAsserted).toBe(true);
  });

  it("FWAIT and MMX instructions wait on FERR# as well", () => {
    for (const insn of [[0x9b], [0x0f, 0x6f, 0xc1]]) {
      // fwait / movq mm0, mm1
      const { cpu, log } = pc([...SETUP, ...insn, ...HLT], [], false);
      expect(cpu.run(1000)).toBe(RunExit.HLT);
      expect(log).toEqual(["ferr+"]);
      expect(cpu.ripLo).toBe(ENTRY + SETUP.length);
    }
  });

  it("the no-wait instructions (FNSTSW, FNSTCW, FNCLEX) run without asserting FERR#; nothing is pending after FNCLEX", () => {
    // fnstsw ax; fnstcw [bx+2]; fnclex; fld1; hlt
    const { cpu, log } = pc([...SETUP, 0xdf, 0xe0, 0xd9, 0x7f, 0x02, ...FNCLEX, ...FLD1, ...HLT], []);
    expect(cpu.run(1000)).toBe(RunExit.HLT);
    expect(log).toEqual([]);
    expect(cpu.r[0]! & 0x84).toBe(0x84);
    expect(x87(cpu)).toEqual({ top: 5, es: false });
  });

  it("RESET clears SW.ES, and with it FERR#", () => {
    const { cpu, log } = pc([...SETUP, ...FLD1, ...HLT], [], false);
    expect(cpu.run(1000)).toBe(RunExit.HLT);
    cpu.reset();
    expect(log).toEqual(["ferr+", "ferr-"]);
    expect(cpu.ferrAsserted).toBe(false);
  });

  it("CR0.NE = 1: #MF, and FERR# is left alone", () => {
    const { cpu, log } = pc([...SETUP, ...FLD1, ...HLT], []);
    cpu.cr0 |= CR0.NE;
    expect(cpu.run(1000)).toBe(RunExit.HLT);
    expect(cpu.ripLo).toBe(0xa001); // the #MF handler's HLT
    expect(log).toEqual([]);
  });
});
