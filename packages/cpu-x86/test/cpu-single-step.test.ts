// RFLAGS.TF single-stepping (SDM Vol. 3 18.3.1.4): a #DB trap with DR6.BS after each instruction
// that starts with TF set. The user-mode cases are checked against the host CPU
// (test/oracle/tf.c single-steps the same bytes at CPL 3 under Linux and reports every SIGTRAP's
// RIP and RCX); the real-mode cases check delivery through the IVT.
import { beforeAll, describe, expect, it } from "vitest";
import { Cpu, F, FlatMemory, RunExit, Vec } from "../src/index.js";
import { CODE, PagedMachine, PTE } from "./helpers/paged.js";
import { buildOracle, haveOracle, runOracle } from "./oracle/build.js";

/** pushfq; and qword [rsp], ~TF; popfq; ret: every snippet ends with TF off again. */
const TAIL = "9c48812424fffeffff9dc3";
/** Snippets (hex). Each starts with `xor ecx, ecx` so RCX is defined at the first trap. */
const CASES: [string, string][] = [
  ["register moves and ALU", "31c9b805000000480fafc04801c14883c107"],
  ["rep movsb: one trap per iteration, RIP kept while RCX > 0", "31c9b903000000488d7424c0488d7c2480f3a4"],
  ["rep stosb with RCX = 0: no iteration, RIP advances", "31c9488d7c2480f3aa"],
  ["repe cmpsb stops on the first difference", "31c9b904000000488d7424c04889f7f3a6"],
  ["loop", "31c9b903000000e2fe"],
  ["popfq with TF set keeps stepping; pushfq/pop see TF", "31c99c589c9dffc1"],
  ["jumps and a call/ret pair", "31c9eb02ffc1e800000000ffc158ffc1"],
];

const USER = 0x200000 - 0x2000; // a user stack page inside the identity-mapped 2 MiB

/** Runs a snippet on the emulator at CPL 3 with TF set; returns "off:rcx" per single-step trap. */
function emulate(hex: string): string {
  const m = new PagedMachine(3);
  m.map(CODE, CODE, PTE.P | PTE.U);
  for (let p = USER - 0x2000; p <= USER; p += 0x1000) m.map(p, p, PTE.P | PTE.W | PTE.U);
  const bytes = (hex + TAIL).match(/../g)!.map((b) => Number.parseInt(b, 16));
  m.load(bytes);
  // The final RET goes to an INT3 (the end marker): #BP is taken by the test's intercept hook.
  m.ram[CODE + 0x800] = 0xcc;
  m.cpu.notifyPhysicalWrite(CODE + 0x800, 1);
  m.setReg(4, USER);
  m.w64(USER, CODE + 0x800);
  m.setReg(1, 0x12345678);
  m.cpu.setRflags(m.cpu.getRflags() | F.TF);
  const traps: string[] = [];
  for (let n = 0; n < 200; n++) {
    m.faults = [];
    const exit = m.cpu.run(1000);
    expect(exit).toBe(RunExit.INTERCEPT);
    const f = m.faults[0]!;
    if (f.vec === Vec.BP) return traps.join(" ");
    expect(f.vec).toBe(Vec.DB);
    expect(m.dbHits).toBe(0x4000); // BS alone (under the hook the cause is in dbHits, not DR6)
    expect(m.cpu.dr6 & 0x4000).toBe(0);
    const off = (m.cpu.ripLo >>> 0) - CODE;
    traps.push(`${off.toString(16)}:${(m.cpu.r[2]! >>> 0).toString(16)}`);
  }
  throw new Error("no end marker after 200 traps");
}

describe("single-step (RFLAGS.TF) against the host CPU", () => {
  let host: string[] = [];
  beforeAll(() => {
    if (!haveOracle())
      throw new Error("these tests need gcc on an x86-64 host (the host CPU is the reference)");
    host = runOracle(
      buildOracle("tf"),
      CASES.map(([, hex]) => hex + TAIL),
    );
  });

  CASES.forEach(([name, hex], k) => {
    it(name, () => {
      // The host also traps after the CALL that enters the snippet (offset 0, RCX undefined).
      const want = host[k]!.split(" ")
        .filter((t) => !t.startsWith("0:"))
        .join(" ");
      expect(want.length).toBeGreaterThan(0);
      expect(emulate(hex)).toBe(want);
    });
  });
});

/** pushf; pop ax; or ax, 0x100; push ax; popf */
const TF_ON = [0x9c, 0x58, 0x0d, 0x00, 0x01, 0x50, 0x9d];
/** pushf; pop ax; and ax, 0xfeff; push ax; popf */
const TF_OFF = [0x9c, 0x58, 0x25, 0xff, 0xfe, 0x50, 0x9d];

/** Real mode: `code` at 0x7c00 with SP = 0x7000; a #DB handler at 0x8000 that counts in BX and IRETs. */
function realMode(code: number[]): { cpu: Cpu; ram: Uint8Array } {
  const ram = new Uint8Array(1 << 20);
  ram.set(code, 0x7c00);
  ram.set([0x43, 0xcf], 0x8000); // inc bx; iret
  new DataView(ram.buffer).setUint32(4, 0x8000, true); // IVT[1] = 0000:8000
  const cpu = new Cpu({ memory: new FlatMemory(ram) });
  cpu.setRealModeEntry(0, 0x7c00);
  cpu.r[8] = 0x7000;
  return { cpu, ram };
}

describe("single-step delivery (real mode, through the IVT)", () => {
  it("POPF that sets TF does not trap, the POPF that clears it does; DR6.BS set; handler untraced", () => {
    // TF on (pushf; pop ax; or ax, 0x100; push ax; popf); nop; nop; TF off; hlt
    const { cpu } = realMode([...TF_ON, 0x90, 0x90, ...TF_OFF, 0xf4]);
    expect(cpu.run(1000)).toBe(RunExit.HLT);
    // Traps after nop, nop and the five instructions of TF_OFF; the handler's inc/iret run with
    // TF clear (or BX would count them too).
    expect(cpu.r[6]! & 0xffff).toBe(7);
    expect(cpu.dr6 & 0x4000).toBe(0x4000);
    expect(cpu.getRflags() & F.TF).toBe(0);
  });

  it("the trap is delivered with the next instruction's IP (a trap, not a fault)", () => {
    // As above, but the handler halts: the IP it would return to is at SS:SP.
    const { cpu, ram } = realMode([...TF_ON, 0x90, 0xf4]);
    ram[0x8000] = 0xf4;
    expect(cpu.run(1000)).toBe(RunExit.HLT);
    expect(new DataView(ram.buffer).getUint16(cpu.r[8]! & 0xffff, true)).toBe(0x7c08);
    expect(cpu.getRflags() & F.TF).toBe(0);
  });

  it("MOV SS blocks the trap after it: the next instruction's trap is the only one (SDM 6.8.3)", () => {
    // TF on; mov ax, ss; mov ss, ax; inc cx; TF off; hlt
    const { cpu } = realMode([...TF_ON, 0x8c, 0xd0, 0x8e, 0xd0, 0x41, ...TF_OFF, 0xf4]);
    expect(cpu.run(1000)).toBe(RunExit.HLT);
    // After mov ax, ss; none after mov ss, ax; after inc cx; after the five of TF_OFF.
    expect(cpu.r[6]! & 0xffff).toBe(7);
  });

  it("INT n with TF set: the handler runs untraced and no trap follows the INT", () => {
    // TF on; int 0x21; TF off; hlt. IVT[0x21] -> 0000:8100: inc si; iret (TF back on).
    const { cpu, ram } = realMode([...TF_ON, 0xcd, 0x21, ...TF_OFF, 0xf4]);
    ram.set([0x46, 0xcf], 0x8100);
    new DataView(ram.buffer).setUint32(0x21 * 4, 0x8100, true);
    expect(cpu.run(1000)).toBe(RunExit.HLT);
    expect(cpu.r[12]! & 0xffff).toBe(1); // the INT 0x21 handler ran once
    expect(cpu.r[6]! & 0xffff).toBe(5); // traps after the five TF_OFF instructions only
  });
});
