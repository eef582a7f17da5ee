import { ExitReason, F, Vmcs } from "@tskvm/vmx";
import { beforeAll, describe, expect, it } from "vitest";
import { assemble, hasTool, type Machine, machine, realMode, runLog } from "./run-helpers.js";

const NASM = hasTool("nasm");
if (!NASM) console.warn("run-nested: nasm is not installed (Debian: apt-get install nasm); skipped");

/** Where nested-vmx.asm keeps its case byte, VMCS A and the L2 CPUID results. */
const CASE = 0x0ff0;
const VMCS_A = 0x21000;
const RESULT = 0x9000;

describe.skipIf(!NASM)("KVM_RUN: nested VMX (a guest hypervisor runs its own guest)", () => {
  let bin: Uint8Array;
  beforeAll(() => {
    bin = assemble("nested-vmx");
  });

  /** A VM with nested VMX on (Kvm `nested`) and the supported CPUID table (it has VMX) set. */
  function nestedMachine(testCase: number, nested = true): Machine {
    const m = machine({ kvm: { nested } });
    m.vcpu.setCpuid2(m.kvm.getSupportedCpuid());
    m.ram.set(bin, 0x1000);
    m.ram[CASE] = testCase;
    realMode(m, 0x1000);
    return m;
  }

  /** vmcs12 as L1's VMCLEAR left it in its memory (our VMCS layout, vmx/src/vmcs.ts). */
  function vmcs12(m: Machine): Vmcs {
    const v = new Vmcs();
    v.bytes.set(m.ram.subarray(VMCS_A, VMCS_A + 4096));
    return v;
  }

  it("KVM_GET_SUPPORTED_CPUID reports CPUID.1:ECX.VMX only with the nested option", () => {
    const leaf1 = (nested: boolean) =>
      nestedMachine(0, nested)
        .kvm.getSupportedCpuid()
        .find((e) => e.function === 1)!;
    expect(leaf1(true).ecx & 0x20).toBe(0x20);
    expect(leaf1(false).ecx & 0x20).toBe(0);
  });

  it("L1 VMLAUNCHes L2; CPUID and OUT 0x80 exit to L1, OUT 0x19 goes to userspace, HLT ends it", () => {
    const m = nestedMachine(0);
    expect(runLog(m)).toEqual([
      "io out 0x11 4 0a000000", // CPUID (10): L1 emulates it with its own CPUID
      "io out 0x19 1 77", // not in L1's I/O bitmap: L0 handles L2's OUT itself
      "io out 0x11 4 1e000000", // I/O instruction (30) for port 0x80
      "io out 0x12 4 40008000", // qualification: port 0x80, 1 byte, OUT, immediate (SDM Table 28-5)
      "io out 0x13 1 42", // L2's AL, read by L1 from the shared registers
      // REP OUTSB to port 0x81: one exit per iteration (qualification: string, REP, port 0x81);
      // L1 emulates each iteration and leaves RIP on the instruction until RCX is 0.
      "io out 0x11 4 1e000000",
      "io out 0x12 4 30008100",
      "io out 0x13 1 61",
      "io out 0x11 4 1e000000",
      "io out 0x12 4 30008100",
      "io out 0x13 1 62",
      // REP OUTSB to port 0x19: not L1's, L0 emulates it for L2 (one userspace exit per byte).
      "io out 0x19 1 61",
      "io out 0x19 1 62",
      "io out 0x11 4 0c000000", // HLT (12)
      "io out 0x18 1 dd", // L1: VMCLEAR, VMXOFF succeeded
      "hlt",
    ]);
    // L2's CPUID(0) vendor came through L1's CPUID (L0's table).
    const vendor = new TextDecoder().decode(m.ram.subarray(RESULT, RESULT + 12));
    const t = new Uint32Array(4);
    m.vcpu.cpuid(0, 0, t);
    const expected = new TextDecoder().decode(new Uint8Array(new Uint32Array([t[1]!, t[3]!, t[2]!]).buffer));
    expect(vendor).toBe(expected);
    expect(new DataView(m.ram.buffer).getUint32(RESULT + 12, true)).toBe(0); // RCX after REP OUTSB
    // vmcs12 in L1's memory holds the last exit: HLT at L2's HLT instruction, 1 byte long.
    const v = vmcs12(m);
    expect(v.get32(F.VM_EXIT_REASON)).toBe(ExitReason.HLT);
    expect(v.get32(F.VM_EXIT_INSTRUCTION_LEN)).toBe(1);
    expect(m.ram[Number(v.get64(F.GUEST_RIP))]).toBe(0xf4);
    expect(v.launched).toBe(false); // VMCLEAR
    expect(v.get64(F.GUEST_RSP)).toBe(0x24000n);
    // Back in L1: no longer in L2, the final HLT is L1's (long mode, CPL 0).
    expect(m.backend.nested.l2Active).toBe(false);
    expect(m.vcpu.getSregs().cs.selector).toBe(0x18);
    expect(m.backend.nested.unit.inVmxOperation).toBe(false);
  });

  it("SDM 31.3 VMXON: #UD when CR4.VMXE = 0", () => {
    expect(runLog(nestedMachine(1))).toEqual(["io out 0x15 1 06", "hlt"]);
  });

  it("SDM 31.3 VMPTRLD: a region with a foreign revision id is VMfailValid(11)", () => {
    expect(runLog(nestedMachine(2))).toEqual(["io out 0x16 4 40000000", "io out 0x17 4 0b000000", "hlt"]);
  });

  it("SDM 31.3: VMLAUNCH of a launched VMCS is VMfailValid(4), VMRESUME of a clear one VMfailValid(5)", () => {
    const log = runLog(nestedMachine(3));
    expect(log.slice(-7)).toEqual([
      "io out 0x11 4 0c000000",
      "io out 0x16 4 40000000",
      "io out 0x17 4 04000000",
      "io out 0x16 4 40000000",
      "io out 0x17 4 05000000",
      "io out 0x18 1 dd",
      "hlt",
    ]);
  });

  it("SDM 27.2.1: reserved pin-based control bits in vmcs12 are VMfailValid(7)", () => {
    expect(runLog(nestedMachine(4))).toEqual(["io out 0x16 4 40000000", "io out 0x17 4 07000000", "hlt"]);
  });

  it("SDM 27.2.2: a 64-bit host without CR4.PAE in vmcs12 is VMfailValid(8)", () => {
    expect(runLog(nestedMachine(5))).toEqual(["io out 0x16 4 40000000", "io out 0x17 4 08000000", "hlt"]);
  });

  it("SDM 27.3.1/27.8: guest RFLAGS bit 1 clear is a VM-entry failure exit (0x80000021) to L1's host RIP", () => {
    const m = nestedMachine(6);
    expect(runLog(m)).toEqual(["io out 0x11 4 21000080", "io out 0x18 1 dd", "hlt"]);
    expect(m.backend.nested.l2Active).toBe(false);
  });

  it("without nested VMX: IA32_FEATURE_CONTROL's VMX bit is #GP and the VMX MSRs do not exist", () => {
    const m = nestedMachine(0, false);
    expect(runLog(m)).toEqual(["io out 0x15 1 0d", "hlt"]);
  });
});
