import { beforeAll, describe, expect, it } from "vitest";
import { assemble, flat32, hasTool, machine, realMode, runLog } from "./run-helpers.js";

const NASM = hasTool("nasm");
if (!NASM)
  console.warn(
    "run-basic: nasm is not installed (Debian: apt-get install nasm); guest program tests are skipped",
  );

describe.skipIf(!NASM)("KVM_RUN through VMX: guest programs", () => {
  let io: Uint8Array;
  let tf: Uint8Array;
  let mmio: Uint8Array;
  beforeAll(() => {
    io = assemble("io-real");
    tf = assemble("triple-fault");
    mmio = assemble("mmio-prot");
  });

  it("real mode: OUT/IN exits with data and completion, HLT without irqchip", () => {
    const m = machine();
    m.ram.set(io, 0x1000);
    realMode(m, 0x1000);
    const log = runLog(m, { "io 0x11": 0x41 });
    expect(log).toEqual([
      "io out 0x10 1 48",
      "io out 0x3f8 2 4869",
      "io in 0x11 1",
      "io out 0x12 1 42",
      "io out 0x13 4 78563412",
      "hlt",
    ]);
    // The IN completion stored the byte; KVM_RUN after HLT continues past it.
    expect(runLog(m)).toEqual(["io out 0x14 1 ee", "hlt"]);
    const r = m.vcpu.getRegs();
    expect(Number(r.rax & 0xffn)).toBe(0xee);
  });

  it("triple fault -> KVM_EXIT_SHUTDOWN", () => {
    const m = machine();
    m.ram.set(tf, 0x1000);
    realMode(m, 0x1000);
    expect(runLog(m)).toEqual(["io out 0x10 1 01", "shutdown"]);
  });

  it("MMIO: posted write, read answered by userspace, byte write", () => {
    const m = machine();
    m.ram.set(mmio, 0x1000);
    flat32(m, 0x1000);
    const log = runLog(m, { "mmio 0xd0000004": 0x11223344 });
    expect(log).toEqual([
      "mmio write 0xd0000000 4 0df0feca",
      "mmio read 0xd0000004 4",
      "io out 0x20 4 45332211",
      "mmio write 0xd0000008 1 5a",
      "hlt",
    ]);
  });

  it("bad guest state -> KVM_EXIT_FAIL_ENTRY with the entry-failure reason", () => {
    const m = machine();
    m.ram.set(io, 0x1000);
    flat32(m, 0x1000);
    const s = m.vcpu.getSregs();
    s.tr = { ...s.tr, type: 9 }; // an available TSS in TR: it must be busy (SDM 27.3.1.2)
    m.vcpu.setSregs(s);
    expect(runLog(m)).toEqual(["fail-entry 0x80000021"]);
  });
});
