import { describe, expect, it } from "vitest";
import { Pin, Proc, Proc2, ExitReason as R } from "../src/controls";
import { F } from "../src/fields";
import * as I from "../src/intercepts";
import { Vmcs } from "../src/vmcs";
import { FlatMemory } from "./helpers";

const { NO_EXIT, RAISE_UD } = I;

function vmcs(proc = 0, proc2 = 0, pin = 0): Vmcs {
  const v = new Vmcs();
  v.set32(F.PIN_BASED_VM_EXEC_CONTROL, pin);
  v.set32(F.CPU_BASED_VM_EXEC_CONTROL, proc | (proc2 ? Proc.ACTIVATE_SECONDARY : 0));
  v.set32(F.SECONDARY_VM_EXEC_CONTROL, proc2);
  return v;
}

describe("SDM 26.1.3 instruction exits by control (table)", () => {
  const table: [string, (v: Vmcs) => number, number, number, number][] = [
    // name, decision, proc bits, proc2 bits, expected
    ["HLT, HLT exiting = 0", I.hltExit, 0, 0, NO_EXIT],
    ["HLT, HLT exiting = 1", I.hltExit, Proc.HLT_EXITING, 0, R.HLT],
    ["INVLPG exiting", I.invlpgExit, Proc.INVLPG_EXITING, 0, R.INVLPG],
    ["RDPMC exiting", I.rdpmcExit, Proc.RDPMC_EXITING, 0, R.RDPMC],
    ["RDTSC exiting", I.rdtscExit, Proc.RDTSC_EXITING, 0, R.RDTSC],
    ["RDTSCP without enable RDTSCP is #UD", I.rdtscpExit, Proc.RDTSC_EXITING, 0, RAISE_UD],
    ["RDTSCP with enable RDTSCP, no RDTSC exiting", I.rdtscpExit, 0, Proc2.ENABLE_RDTSCP, NO_EXIT],
    ["RDTSCP with RDTSC exiting", I.rdtscpExit, Proc.RDTSC_EXITING, Proc2.ENABLE_RDTSCP, R.RDTSCP],
    ["MWAIT exiting", I.mwaitExit, Proc.MWAIT_EXITING, 0, R.MWAIT],
    ["MONITOR exiting", I.monitorExit, Proc.MONITOR_EXITING, 0, R.MONITOR],
    ["PAUSE exiting", I.pauseExit, Proc.PAUSE_EXITING, 0, R.PAUSE],
    ["WBINVD exiting", I.wbinvdExit, 0, Proc2.WBINVD_EXITING, R.WBINVD],
    [
      "WBINVD exiting ignored without activate secondary",
      (v) => {
        v.set32(F.CPU_BASED_VM_EXEC_CONTROL, 0);
        return I.wbinvdExit(v);
      },
      0,
      Proc2.WBINVD_EXITING,
      NO_EXIT,
    ],
    ["RDRAND exiting", I.rdrandExit, 0, Proc2.RDRAND_EXITING, R.RDRAND],
    ["RDSEED exiting", I.rdseedExit, 0, Proc2.RDSEED_EXITING, R.RDSEED],
    ["INVPCID without enable INVPCID is #UD", I.invpcidExit, Proc.INVLPG_EXITING, 0, RAISE_UD],
    ["INVPCID enabled, INVLPG exiting = 0", I.invpcidExit, 0, Proc2.ENABLE_INVPCID, NO_EXIT],
    [
      "INVPCID enabled, INVLPG exiting = 1",
      I.invpcidExit,
      Proc.INVLPG_EXITING,
      Proc2.ENABLE_INVPCID,
      R.INVPCID,
    ],
    [
      "LGDT with descriptor-table exiting",
      (v) => I.descriptorTableExit(v, false),
      0,
      Proc2.DESC_TABLE_EXITING,
      R.GDTR_IDTR_ACCESS,
    ],
    [
      "LTR with descriptor-table exiting",
      (v) => I.descriptorTableExit(v, true),
      0,
      Proc2.DESC_TABLE_EXITING,
      R.LDTR_TR_ACCESS,
    ],
    ["MOV DR exiting", I.movDrExit, Proc.MOV_DR_EXITING, 0, R.DR_ACCESS],
    ["MOV from CR3, CR3-store exiting", I.movFromCr3Exit, Proc.CR3_STORE_EXITING, 0, R.CR_ACCESS],
    ["MOV to CR8, CR8-load exiting", I.movToCr8Exit, Proc.CR8_LOAD_EXITING, 0, R.CR_ACCESS],
    ["MOV from CR8, CR8-store exiting", I.movFromCr8Exit, Proc.CR8_STORE_EXITING, 0, R.CR_ACCESS],
  ];
  for (const [name, decide, proc, proc2, want] of table) {
    it(name, () => expect(decide(vmcs(proc, proc2))).toBe(want));
  }
  it("SDM 26.3: XSAVES/XRSTORS without enable XSAVES/XRSTORS are #UD", () => {
    const v = vmcs(0, Proc2.WBINVD_EXITING);
    v.set64(F.XSS_EXIT_BITMAP, 0xffffffffffffffffn);
    expect([I.xsavesExit(v, 1 << 8, false), I.xsavesExit(v, 0, true)]).toEqual([RAISE_UD, RAISE_UD]);
    // The control counts only with "activate secondary controls".
    v.set32(F.SECONDARY_VM_EXEC_CONTROL, Proc2.ENABLE_XSAVES);
    v.set32(F.CPU_BASED_VM_EXEC_CONTROL, 0);
    expect(I.xsavesExit(v, 0, false)).toBe(RAISE_UD);
  });
  it("SDM 26.1.3: XSAVES/XRSTORS exit when IA32_XSS & EDX:EAX meets the XSS-exiting bitmap", () => {
    const v = vmcs(0, Proc2.ENABLE_XSAVES);
    v.set64(F.XSS_EXIT_BITMAP, (1n << 8n) | (1n << 40n));
    // IA32_XSS & EDX:EAX = PT (bit 8): in the bitmap.
    expect(I.xsavesExit(v, 1 << 8, false)).toBe(R.XSAVES);
    expect(I.xsavesExit(v, 1 << 8, true)).toBe(R.XRSTORS);
    // CET_U (bit 11) is not in the bitmap; nothing requested never exits.
    expect(I.xsavesExit(v, 1 << 11, false)).toBe(NO_EXIT);
    expect(I.xsavesExit(v, 0, true)).toBe(NO_EXIT);
  });
  it("CPUID, GETSEC, INVD and XSETBV always exit", () => {
    expect(I.UNCONDITIONAL).toEqual({ CPUID: 10, GETSEC: 11, INVD: 13, XSETBV: 55 });
  });
});

describe("SDM 26.1.3/26.3 control-register accesses", () => {
  const v = vmcs();
  v.set64(F.CR0_GUEST_HOST_MASK, 0x80000021n); // host owns PG, NE, PE
  v.set64(F.CR0_READ_SHADOW, 0x80000011n); // guest believes NE = 0
  it("MOV to CR0 exits only when a host-owned bit differs from the read shadow", () => {
    expect(I.movToCrExit(v, 0, 0x80000011n)).toBe(NO_EXIT);
    expect(I.movToCrExit(v, 0, 0x80000013n)).toBe(NO_EXIT); // MP is guest-owned
    expect(I.movToCrExit(v, 0, 0x80000031n)).toBe(R.CR_ACCESS);
    expect(I.movToCrExit(v, 0, 0x00000011n)).toBe(R.CR_ACCESS);
  });
  it("a non-exiting MOV to CR0 keeps host-owned bits; MOV from CR0 reads them from the shadow", () => {
    expect(I.movToCrValue(v, 0, 0x80000013n, 0x80000031n)).toBe(0x80000033n);
    expect(I.movFromCrValue(v, 0, 0x80000033n)).toBe(0x80000013n);
  });
  it("CLTS exits when TS is host-owned and its shadow is 1", () => {
    const w = vmcs();
    w.set64(F.CR0_GUEST_HOST_MASK, 8n);
    expect(I.cltsExit(w)).toBe(NO_EXIT);
    w.set64(F.CR0_READ_SHADOW, 8n);
    expect(I.cltsExit(w)).toBe(R.CR_ACCESS);
  });
  it("LMSW exits on setting a host-owned PE with shadow 0, or changing host-owned MP/EM/TS", () => {
    const w = vmcs();
    w.set64(F.CR0_GUEST_HOST_MASK, 0xfn);
    w.set64(F.CR0_READ_SHADOW, 0x1n);
    expect(I.lmswExit(w, 0x1)).toBe(NO_EXIT);
    expect(I.lmswExit(w, 0x0)).toBe(NO_EXIT); // LMSW cannot clear PE
    expect(I.lmswExit(w, 0x3)).toBe(R.CR_ACCESS);
    w.set64(F.CR0_READ_SHADOW, 0n);
    expect(I.lmswExit(w, 0x1)).toBe(R.CR_ACCESS);
  });
  it("MOV to CR3 exits with CR3-load exiting unless the value is among the first count targets", () => {
    const w = vmcs(Proc.CR3_LOAD_EXITING);
    w.set64(F.CR3_TARGET_VALUE0, 0x1000n);
    w.set64(F.CR3_TARGET_VALUE1, 0x2000n);
    w.set32(F.CR3_TARGET_COUNT, 1);
    expect(I.movToCr3Exit(w, 0x1000n)).toBe(NO_EXIT);
    expect(I.movToCr3Exit(w, 0x2000n)).toBe(R.CR_ACCESS);
    w.set32(F.CR3_TARGET_COUNT, 2);
    expect(I.movToCr3Exit(w, 0x2000n)).toBe(NO_EXIT);
    expect(I.movToCr3Exit(vmcs(), 0x3000n)).toBe(NO_EXIT);
  });
  it("CR-access and MOV-DR qualifications follow SDM Tables 28-3 and 28-4", () => {
    expect(I.crQualification(4, I.CrAccess.MOV_TO_CR, 3)).toBe(0x304);
    expect(I.crQualification(0, I.CrAccess.LMSW, 0, true, 0xabcd)).toBe(0xabcd0070);
    expect(I.drQualification(7, true, 2)).toBe(0x217);
  });
  it("MOV to CR4 uses the CR4 mask and shadow", () => {
    const w = vmcs();
    w.set64(F.CR4_GUEST_HOST_MASK, 0x2000n);
    w.set64(F.CR4_READ_SHADOW, 0n);
    expect(I.movToCrExit(w, 4, 0x20n)).toBe(NO_EXIT);
    expect(I.movToCrExit(w, 4, 0x2020n)).toBe(R.CR_ACCESS);
    expect(I.movFromCrValue(w, 4, 0x2020n)).toBe(0x20n);
  });
});

describe("SDM 30.1-30.3 TPR shadow", () => {
  it("MOV to CR8 writes VTPR and reports TPR-below-threshold; MOV from CR8 reads it", () => {
    const mem = new FlatMemory();
    const v = vmcs(Proc.USE_TPR_SHADOW);
    v.set64(F.VIRTUAL_APIC_PAGE_ADDR, 0x6000n);
    v.set32(F.TPR_THRESHOLD, 5);
    mem.bytes[0x6081] = 0xaa;
    expect(I.writeVirtualCr8(v, mem, 7)).toBe(NO_EXIT);
    expect(mem.bytes[0x6080]).toBe(0x70);
    expect(mem.bytes[0x6081]).toBe(0);
    expect(I.readVirtualCr8(v, mem)).toBe(7);
    expect(I.writeVirtualCr8(v, mem, 4)).toBe(R.TPR_BELOW_THRESHOLD);
  });
});

describe("SDM 30.4 APIC-access page", () => {
  const v = vmcs(0, Proc2.VIRTUALIZE_APIC_ACCESSES);
  v.set64(F.APIC_ACCESS_ADDR, 0xfee00000n);
  it("accesses to the page exit with reason 44; elsewhere nothing happens", () => {
    expect(I.apicAccessExit(v, 0xfee000b0, 4, I.ApicAccessType.WRITE)).toBe(R.APIC_ACCESS);
    expect(I.apicAccessExit(v, 0xfee01000, 4, I.ApicAccessType.WRITE)).toBe(NO_EXIT);
    expect(I.apicAccessQualification(0xb0, I.ApicAccessType.WRITE)).toBe(0x10b0);
  });
  it("with the TPR shadow, 32-bit accesses to offset 80H are virtualized", () => {
    expect(I.apicAccessExit(v, 0xfee00080, 4, I.ApicAccessType.READ)).toBe(R.APIC_ACCESS);
    v.set32(F.CPU_BASED_VM_EXEC_CONTROL, v.get32(F.CPU_BASED_VM_EXEC_CONTROL) | Proc.USE_TPR_SHADOW);
    expect(I.apicAccessExit(v, 0xfee00080, 4, I.ApicAccessType.READ)).toBe(NO_EXIT);
    expect(I.apicAccessExit(v, 0xfee00080, 1, I.ApicAccessType.READ)).toBe(R.APIC_ACCESS);
  });
});

describe("SDM 25.6.4 I/O exiting and bitmaps", () => {
  const mem = new FlatMemory();
  it("without bitmaps: unconditional I/O exiting decides", () => {
    expect(I.ioExit(vmcs(), mem, 0x3f8, 1)).toBe(NO_EXIT);
    expect(I.ioExit(vmcs(Proc.UNCOND_IO_EXITING), mem, 0x3f8, 1)).toBe(R.IO_INSTRUCTION);
  });
  it("with bitmaps: bitmap A for 0-7FFF, B for 8000-FFFF, every byte of a multi-byte access, wrap exits", () => {
    const v = vmcs(Proc.USE_IO_BITMAPS | Proc.UNCOND_IO_EXITING);
    v.set64(F.IO_BITMAP_A, 0x10000n);
    v.set64(F.IO_BITMAP_B, 0x11000n);
    mem.bytes[0x10000 + (0x3f9 >>> 3)] = 1 << (0x3f9 & 7);
    mem.bytes[0x11000 + 1] = 0x01; // port 8008
    expect(I.ioExit(v, mem, 0x3f8, 1)).toBe(NO_EXIT);
    expect(I.ioExit(v, mem, 0x3f8, 2)).toBe(R.IO_INSTRUCTION);
    expect(I.ioExit(v, mem, 0x8008, 1)).toBe(R.IO_INSTRUCTION);
    expect(I.ioExit(v, mem, 0x8009, 1)).toBe(NO_EXIT);
    expect(I.ioExit(v, mem, 0xffff, 2)).toBe(R.IO_INSTRUCTION);
  });
  it("qualification: size-1, direction, string, REP, immediate, port (Table 28-5)", () => {
    expect(I.ioQualification(0x3f8, 1, false, false, false, false)).toBe(0x03f80000);
    expect(I.ioQualification(0x60, 4, true, true, true, true)).toBe(0x0060007b);
  });
});

describe("SDM 25.6.9 MSR bitmaps", () => {
  const mem = new FlatMemory();
  const v = vmcs(Proc.USE_MSR_BITMAPS);
  v.set64(F.MSR_BITMAP, 0x20000n);
  mem.bytes[0x20000 + (0x10 >>> 3)] = 1 << (0x10 & 7); // read TSC
  mem.bytes[0x20000 + 1024 + (0x80 >>> 3)] = 1; // read C0000080 (EFER)
  mem.bytes[0x20000 + 2048 + (0x174 >>> 3)] = 1 << (0x174 & 7); // write SYSENTER_CS
  mem.bytes[0x20000 + 3072 + (0x102 >>> 3)] = 1 << (0x102 & 7); // write KERNEL_GS_BASE
  const table: [number, boolean, number][] = [
    [0x10, false, R.RDMSR],
    [0x10, true, NO_EXIT],
    [0x174, false, NO_EXIT],
    [0x174, true, R.WRMSR],
    [0xc0000080, false, R.RDMSR],
    [0xc0000080, true, NO_EXIT],
    [0xc0000102, true, R.WRMSR],
    [0x4b564d00, false, R.RDMSR], // outside both ranges
    [0x2000, true, R.WRMSR],
  ];
  for (const [msr, write, want] of table)
    it(`${write ? "WRMSR" : "RDMSR"} ${msr.toString(16)}`, () =>
      expect(I.msrExit(v, mem, msr, write)).toBe(want));
  it("without MSR bitmaps every access exits", () => {
    expect(I.msrExit(vmcs(), mem, 0x10, false)).toBe(R.RDMSR);
  });
});

describe("SDM 26.2 exceptions, NMIs, external interrupts; 26.7.5/26.7.6 windows", () => {
  it("exception bitmap", () => {
    const v = vmcs();
    v.set32(F.EXCEPTION_BITMAP, 1 << 6);
    expect(I.exceptionExits(v, 6, 0)).toBe(true);
    expect(I.exceptionExits(v, 13, 0)).toBe(false);
  });
  it("#PF: exits iff bitmap bit 14 equals (error code & mask) == match", () => {
    const v = vmcs();
    v.set32(F.PAGE_FAULT_ERROR_CODE_MASK, 2);
    v.set32(F.PAGE_FAULT_ERROR_CODE_MATCH, 2);
    expect(I.exceptionExits(v, 14, 2)).toBe(false);
    v.set32(F.EXCEPTION_BITMAP, 1 << 14);
    expect(I.exceptionExits(v, 14, 2)).toBe(true);
    expect(I.exceptionExits(v, 14, 0)).toBe(false);
    v.set32(F.EXCEPTION_BITMAP, 0);
    expect(I.exceptionExits(v, 14, 0)).toBe(true);
    expect(I.exceptionExitInfo(14, 3, 2)).toBe(0x80000b0e);
  });
  it("external-interrupt and NMI exiting; acknowledge interrupt on exit", () => {
    const v = vmcs(0, 0, Pin.EXT_INTR_EXITING | Pin.NMI_EXITING);
    expect(I.externalInterruptExits(v)).toBe(true);
    expect(I.nmiExits(v)).toBe(true);
    expect(I.externalInterruptExitInfo(v, 0x30)).toBe(0);
    v.set32(F.VM_EXIT_CONTROLS, 1 << 15);
    expect(I.acknowledgeOnExit(v)).toBe(true);
    expect(I.externalInterruptExitInfo(v, 0x30)).toBe(0x80000030);
    expect(I.NMI_EXIT_INFO).toBe(0x80000202);
    expect(I.externalInterruptExits(vmcs())).toBe(false);
  });
  it("interrupt window opens with IF = 1 and no STI/MOV-SS blocking", () => {
    const v = vmcs(Proc.INTR_WINDOW_EXITING);
    expect(I.interruptWindowExit(v, false, 0)).toBe(NO_EXIT);
    expect(I.interruptWindowExit(v, true, 1)).toBe(NO_EXIT);
    expect(I.interruptWindowExit(v, true, 0)).toBe(R.INTERRUPT_WINDOW);
  });
  it("NMI window opens without virtual-NMI or MOV-SS blocking", () => {
    const v = vmcs(Proc.NMI_WINDOW_EXITING);
    expect(I.nmiWindowExit(v, 8)).toBe(NO_EXIT);
    expect(I.nmiWindowExit(v, 2)).toBe(NO_EXIT);
    expect(I.nmiWindowExit(v, 0)).toBe(R.NMI_WINDOW);
  });
});

describe("SDM 25.6.5 TSC offsetting and scaling", () => {
  it("offset applies only with use TSC offsetting, modulo 2^64; scaling multiplies by multiplier / 2^48", () => {
    const v = vmcs();
    v.set64(F.TSC_OFFSET, 0xfffffffffffff000n); // -4096
    expect(I.guestTsc(v, 10000n)).toBe(10000n);
    v.set32(F.CPU_BASED_VM_EXEC_CONTROL, Proc.USE_TSC_OFFSETTING);
    expect(I.guestTsc(v, 10000n)).toBe(10000n - 4096n);
    const w = vmcs(Proc.USE_TSC_OFFSETTING, Proc2.TSC_SCALING);
    w.set64(F.TSC_MULTIPLIER, 2n << 48n);
    w.set64(F.TSC_OFFSET, 5n);
    expect(I.guestTsc(w, 1000n)).toBe(2005n);
  });
});

describe("SDM 26.5.2 monitor trap flag", () => {
  it("MTF exits after an instruction unless the control is 0 or the state is shutdown/wait-for-SIPI", () => {
    expect(I.mtfExit(vmcs(), 0)).toBe(NO_EXIT);
    expect(I.mtfExit(vmcs(Proc.MONITOR_TRAP_FLAG), 0)).toBe(R.MONITOR_TRAP_FLAG);
    expect(I.mtfExit(vmcs(Proc.MONITOR_TRAP_FLAG), 1)).toBe(R.MONITOR_TRAP_FLAG);
    expect(I.mtfExit(vmcs(Proc.MONITOR_TRAP_FLAG), 3)).toBe(NO_EXIT);
  });
});

describe("SDM 26.2, 27.6.2 INIT, SIPI and activity-state blocking", () => {
  it("INIT exits except in wait-for-SIPI; SIPI exits only in wait-for-SIPI", () => {
    expect(I.initExit(0)).toBe(R.INIT_SIGNAL);
    expect(I.initExit(1)).toBe(R.INIT_SIGNAL);
    expect(I.initExit(3)).toBe(NO_EXIT);
    expect(I.sipiExit(0)).toBe(NO_EXIT);
    expect(I.sipiExit(1)).toBe(NO_EXIT);
    expect(I.sipiExit(3)).toBe(R.SIPI);
    expect(I.TRIPLE_FAULT_EXIT).toBe(2);
  });
  it("wait-for-SIPI blocks interrupts and NMIs; shutdown blocks interrupts only", () => {
    expect(I.blockedByActivity(3, true)).toBe(true);
    expect(I.blockedByActivity(3, false)).toBe(true);
    expect(I.blockedByActivity(2, false)).toBe(true);
    expect(I.blockedByActivity(2, true)).toBe(false);
    expect(I.blockedByActivity(1, false)).toBe(false);
  });
});
