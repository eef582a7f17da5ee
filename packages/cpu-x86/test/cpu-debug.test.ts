// DR7 instruction breakpoints (SDM Vol. 3 18.3.1.1), in real mode with hand-assembled code.
import { describe, expect, it } from "vitest";
import { Cpu, F, FlatMemory, RunExit } from "../src/index.js";

/** nop; nop; mov ax, 1; hlt at 0x7c00, a #DB handler `mov ax, 0x55; hlt` at 0x8000. */
function setup(): { cpu: Cpu; ram: Uint8Array } {
  const ram = new Uint8Array(1 << 20);
  ram.set([0x90, 0x90, 0xb8, 0x01, 0x00, 0xf4], 0x7c00);
  ram.set([0xb8, 0x55, 0x00, 0xf4], 0x8000);
  new DataView(ram.buffer).setUint32(4, 0x8000, true); // IVT[1] = 0000:8000
  const cpu = new Cpu({ memory: new FlatMemory(ram) });
  cpu.setRealModeEntry(0, 0x7c00);
  cpu.r[8] = 0x7000; // SP
  return { cpu, ram };
}

describe("instruction breakpoints", () => {
  it("SDM 18.3.1.1: an enabled execute breakpoint faults before the instruction, B0 set in DR6", () => {
    const { cpu, ram } = setup();
    cpu.dr[0] = 0x7c02;
    cpu.dr7 = 0x401; // L0, R/W0 = 00 (execute), LEN0 = 00
    expect(cpu.run(100)).toBe(RunExit.HLT);
    expect(cpu.r[0]! & 0xffff).toBe(0x55);
    expect(cpu.dr6 & 0xf).toBe(1);
    // A fault: the saved IP is the breakpoint's instruction (IP at SP, after FLAGS and CS).
    expect(new DataView(ram.buffer).getUint16(0x7000 - 6, true)).toBe(0x7c02);
  });

  it("SDM 18.3.1.1: a disabled or data breakpoint does not fire on execution", () => {
    for (const dr7 of [0x400, 0x10401]) {
      const { cpu } = setup();
      cpu.dr[0] = 0x7c02;
      cpu.dr7 = dr7;
      expect(cpu.run(100)).toBe(RunExit.HLT);
      expect(cpu.r[0]! & 0xffff).toBe(1);
    }
  });

  it("SDM 18.3.1.1: RFLAGS.RF suppresses the breakpoint for one instruction and is then cleared", () => {
    const { cpu } = setup();
    cpu.dr[0] = 0x7c00;
    cpu.dr7 = 0x402; // G0
    cpu.setRflags(cpu.getRflags() | F.RF);
    expect(cpu.run(100)).toBe(RunExit.HLT);
    expect(cpu.r[0]! & 0xffff).toBe(1);
    expect(cpu.getRflags() & F.RF).toBe(0);
  });
});
