// System behaviour per SDM rule, driven by a small boot program (test/fixtures/cpu/modes.S, assembled
// into modes.bin): real mode -> protected mode -> long mode through CR0.PE/PG, CR4.PAE, EFER.LME, a
// 64-bit IDT and TSS, exceptions with their error codes, SYSCALL/SYSRET across privilege levels.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { Cpu, EFER, enterFlatProtectedMode, FlatMemory, RunExit, Seg } from "../src/index.js";

const RES = 0x8000;
const bin = readFileSync(new URL("./fixtures/cpu/modes.bin", import.meta.url));

function boot(): { cpu: Cpu; ram: Uint8Array; dv: DataView } {
  const ram = new Uint8Array(4 << 20);
  ram.set(bin, 0x7c00);
  const cpu = new Cpu({ memory: new FlatMemory(ram) });
  cpu.setRealModeEntry(0, 0x7c00);
  return { cpu, ram, dv: new DataView(ram.buffer) };
}

describe("mode transitions and exceptions (modes.S)", () => {
  const { cpu, dv } = boot();
  const exit = cpu.run(100_000);
  const u64 = (o: number) => dv.getBigUint64(RES + o, true);

  it("ends halted at CPL 0 in the SYSCALL entry", () => {
    expect(exit).toBe(RunExit.HLT);
    expect(cpu.cpl).toBe(0);
    expect(cpu.codeMode).toBe(64);
  });

  it("SDM 10.8.5: real -> protected -> IA-32e mode (LMA set by CR0.PG with LME)", () => {
    expect(dv.getUint16(RES, true)).toBe(0x1616);
    expect(dv.getUint32(RES + 4, true)).toBe(0x32323232);
    expect(u64(8)).toBe(0x123456789abcdef0n);
    expect(cpu.efer & EFER.LMA).not.toBe(0);
  });

  it("SDM 6.15: exceptions arrive with their vectors and error codes", () => {
    const n = Number(u64(0xf8));
    const log: [number, number][] = [];
    for (let k = 0; k < n; k++) log.push([Number(u64(0x100 + 16 * k)), Number(u64(0x108 + 16 * k))]);
    expect(log).toEqual([
      [0, 0], // #DE
      [3, 0], // #BP
      [14, 0], // #PF: not present, read, supervisor
      [13, 0x48], // #GP(selector)
      [3, 0], // #BP from CPL 3 through TSS.RSP0
    ]);
  });

  it("SDM 4.7: #PF stores the faulting linear address in CR2", () => {
    expect(u64(0x50)).toBe(0x400000n);
  });

  it("SDM SYSCALL/SYSRET: enters CPL 0 at LSTAR, returns to CPL 3 with CS = STAR[63:48]+16 | 3", () => {
    expect(u64(0x40)).toBe(0x5cn);
    expect(Number(u64(0x58)) & 0xffff).toBe(0x2b);
    // The second SYSCALL entered with the user's RSP (SYSCALL does not switch stacks).
    expect(cpu.segSel[Seg.CS]! & 0xffff).toBe(0x18);
  });

  it("save/restore round-trips the whole state", () => {
    const s1 = cpu.save();
    const other = new Cpu({ memory: new FlatMemory(new Uint8Array(4096)) });
    other.restore(JSON.parse(JSON.stringify(s1)));
    expect(other.save()).toEqual(s1);
    expect(other.cpl).toBe(0);
    expect(other.codeMode).toBe(64);
  });
});

describe("call gates (gates.S)", () => {
  it("SDM 5.8.5: CALL through a DPL-3 gate to CPL 0 switches to the TSS stack and copies the parameter; RETF 4 returns", () => {
    const ram = new Uint8Array(1 << 20);
    ram.set(readFileSync(new URL("./fixtures/cpu/gates.bin", import.meta.url)), 0x1000);
    const cpu = new Cpu({ memory: new FlatMemory(ram) });
    enterFlatProtectedMode(cpu);
    cpu.ripLo = 0x1000;
    cpu.r[8] = 0x7800;
    expect(cpu.run(1000)).toBe(RunExit.HLT);
    const dv = new DataView(ram.buffer);
    expect(dv.getUint32(RES, true)).toBe(3); // reached CPL 3 through IRETD
    expect(dv.getUint32(RES + 4, true)).toBe(0x1234); // parameter copied to the inner stack
    expect(dv.getUint32(RES + 16, true)).toBe(0x5ffc); // caller's ESP pushed on the inner stack
    expect(dv.getUint16(RES + 20, true)).toBe(0x10); // SS from TSS.SS0
    expect(dv.getUint32(RES + 8, true)).toBe(0x6000); // RETF 4 popped the parameter at CPL 3
    expect(cpu.cpl).toBe(0);
    expect(cpu.segSel[Seg.CS]! & 0xffff).toBe(0x08);
  });

  it("SDM 6.12.1: INT 0x80 through a DPL-3 trap gate switches to TSS.ESP0 and IRETD returns to CPL 3", () => {
    const ram = new Uint8Array(1 << 20);
    ram.set(readFileSync(new URL("./fixtures/cpu/gates.bin", import.meta.url)), 0x1000);
    const cpu = new Cpu({ memory: new FlatMemory(ram) });
    enterFlatProtectedMode(cpu);
    cpu.ripLo = 0x1000;
    cpu.r[8] = 0x7800;
    expect(cpu.run(1000)).toBe(RunExit.HLT);
    const dv = new DataView(ram.buffer);
    expect(dv.getUint32(RES + 0x28, true)).toBe(0x7000 - 20); // EIP, CS, EFLAGS, ESP, SS on the inner stack
    expect(dv.getUint32(RES + 0x2c, true)).toBe(0x23); // the user SS
    expect(dv.getUint32(RES + 0x24, true)).toBe(0x6000); // user ESP back after IRETD
    expect(dv.getUint32(RES + 0x30, true)).toBe(0); // CLI at CPL 3 with IOPL 0: #GP(0)
  });
});

describe("task switches (tasks.S)", () => {
  it("SDM 8.3: CALL to a TSS nests (NT, back link), IRETD returns, JMP through a task gate resumes the task", () => {
    const ram = new Uint8Array(1 << 20);
    ram.set(readFileSync(new URL("./fixtures/cpu/tasks.bin", import.meta.url)), 0x1000);
    const cpu = new Cpu({ memory: new FlatMemory(ram) });
    enterFlatProtectedMode(cpu);
    cpu.ripLo = 0x1000;
    cpu.r[8] = 0x7800;
    expect(cpu.run(1000)).toBe(RunExit.HLT);
    const dv = new DataView(ram.buffer);
    expect(dv.getUint32(RES + 8, true)).toBe(0x2222); // task 2 ran
    expect(dv.getUint32(RES + 12, true)).toBe(0x20); // its back link is task 1's TSS
    expect(dv.getUint32(RES + 24, true) & 0x4000).toBe(0x4000); // NT set by the CALL
    expect(dv.getUint32(RES, true)).toBe(0x1111); // task 1's registers restored from its TSS
    expect(dv.getUint32(RES + 20, true)).toBe(0xb0b0);
    expect(dv.getUint32(RES + 16, true)).toBe(0x3333); // task 2 resumed after its IRETD
    expect(cpu.segSel[Seg.TR]! & 0xffff).toBe(0x28);
    expect(cpu.cr0 & 8).toBe(8); // CR0.TS set by the task switch
    expect(cpu.r[6]).toBe(0x5555); // EBX of task 2 as it was saved at its IRETD
  });
});

describe("virtual-8086 mode (v86.S)", () => {
  it("SDM 20.2, 20.3: IRETD with VM=1 enters virtual-8086 mode; INT n leaves it through a 32-bit gate", () => {
    const ram = new Uint8Array(1 << 20);
    ram.set(readFileSync(new URL("./fixtures/cpu/v86.bin", import.meta.url)), 0x1000);
    const cpu = new Cpu({ memory: new FlatMemory(ram) });
    enterFlatProtectedMode(cpu);
    cpu.ripLo = 0x1000;
    cpu.r[8] = 0x7800;
    expect(cpu.run(1000)).toBe(RunExit.HLT);
    const dv = new DataView(ram.buffer);
    expect(dv.getUint16(0x3010, true)).toBe(0x1234); // DS:0x10 with DS = 0x300 (base 0x3000)
    expect(dv.getUint16(0x3012, true)).toBe(0x1234); // read back through [BX]
    expect(dv.getUint32(RES, true)).toBe(0x10 + 17); // return IP after INT 0x21 (17 bytes of V86 code)
    expect(dv.getUint32(RES + 4, true)).toBe(0x200); // V86 CS
    expect(dv.getUint32(RES + 8, true) & 0x20000).toBe(0x20000); // pushed EFLAGS.VM
    expect(dv.getUint32(RES + 12, true)).toBe(0x300); // pushed ES
    expect(dv.getUint32(RES + 16, true)).toBe(0x300); // pushed DS
    expect(dv.getUint16(RES + 20, true)).toBe(0); // DS nulled for the handler
    expect(cpu.cpl).toBe(0);
  });
});

describe("interrupts", () => {
  it("SDM 6.8.3: STI delays an external interrupt by one instruction", () => {
    const ram = new Uint8Array(1 << 20);
    // IVT entry 0x20 -> 0000:0600 (hlt); code: sti; inc ax; inc ax; hlt
    ram.set([0x00, 0x06, 0x00, 0x00], 0x20 * 4);
    ram[0x600] = 0xf4;
    ram.set([0xfb, 0x40, 0x40, 0xf4], 0x7c00);
    let acked = 0;
    const cpu = new Cpu({
      memory: new FlatMemory(ram),
      interrupts: {
        acknowledge: () => {
          acked++;
          return 0x20;
        },
      },
    });
    cpu.setRealModeEntry(0, 0x7c00);
    cpu.irqPending = true;
    expect(cpu.run(100)).toBe(RunExit.HLT);
    // One INC ran in the shadow, then the interrupt arrived (return address 0x7c02 on the stack).
    expect(cpu.r[0]! & 0xffff).toBe(1);
    expect(acked).toBe(1);
    expect(cpu.ripLo).toBe(0x601);
    const sp = cpu.r[8]! & 0xffff;
    expect(ram[sp]! | (ram[sp + 1]! << 8)).toBe(0x7c02);
  });

  it("a triple fault shuts the processor down", () => {
    const ram = new Uint8Array(1 << 20);
    ram.set([0x0f, 0x0b], 0x7c00); // ud2 with an empty IDT limit
    const cpu = new Cpu({ memory: new FlatMemory(ram) });
    cpu.setRealModeEntry(0, 0x7c00);
    cpu.idtrLimit = 0;
    expect(cpu.run(100)).toBe(RunExit.SHUTDOWN);
  });

  it("intercepts see CPUID and can take it over", () => {
    const ram = new Uint8Array(1 << 20);
    ram.set([0x0f, 0xa2, 0xf4], 0x7c00);
    const seen: number[] = [];
    const cpu = new Cpu({
      memory: new FlatMemory(ram),
      intercepts: {
        intercept: (kind) => {
          seen.push(kind);
          return kind === 1;
        },
      },
    });
    cpu.setRealModeEntry(0, 0x7c00);
    expect(cpu.run(100)).toBe(RunExit.INTERCEPT);
    expect(cpu.ripLo).toBe(0x7c00);
    expect(seen).toEqual([1]);
  });

  it("SDM 26.7.5: interrupt-window exiting stops at the first boundary with IF=1", () => {
    const ram = new Uint8Array(1 << 20);
    ram.set([0x40, 0xfb, 0x40, 0x40, 0xf4], 0x7c00); // inc ax; sti; inc ax; inc ax; hlt
    const seen: number[] = [];
    const cpu = new Cpu({
      memory: new FlatMemory(ram),
      intercepts: {
        intercept: (kind) => {
          seen.push(kind);
          return kind === 16;
        },
      },
    });
    cpu.setRealModeEntry(0, 0x7c00);
    cpu.interruptWindowExiting = true;
    expect(cpu.run(100)).toBe(RunExit.INTERCEPT);
    // STI's shadow covers the next INC; the window opens after it.
    expect(cpu.ripLo).toBe(0x7c03);
    expect(cpu.r[0]! & 0xffff).toBe(2);
    expect(seen).toEqual([16]);
  });

  it("CPUID reports GenuineIntel and long mode", () => {
    const ram = new Uint8Array(1 << 20);
    // xor eax,eax; cpuid; hlt
    ram.set([0x66, 0x31, 0xc0, 0x0f, 0xa2, 0xf4], 0x7c00);
    const cpu = new Cpu({ memory: new FlatMemory(ram) });
    cpu.setRealModeEntry(0, 0x7c00);
    cpu.run(100);
    const s = (v: number) =>
      String.fromCharCode(v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff);
    expect(s(cpu.r[6]!) + s(cpu.r[4]!) + s(cpu.r[2]!)).toBe("GenuineIntel");
  });
});
