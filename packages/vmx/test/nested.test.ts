import { describe, expect, it } from "vitest";
import {
  copyGuestState,
  ExitReason,
  F,
  FieldType,
  IMPLEMENTED_PROC2,
  INTR_INFO_VALID,
  IntrType,
  type L2Exit,
  l1WantsExit,
  mergedReadShadow,
  Pin,
  Proc,
  Proc2,
  VMCS_FIELDS,
  Vmcs,
  VmxCaps,
  VmxMsr,
} from "../src";
import { FlatMemory, rig, validVmcs } from "./helpers";

const exit = (reason: number, over: Partial<L2Exit> = {}): L2Exit => ({
  reason,
  qualification: 0n,
  intrInfo: 0,
  intrErrorCode: 0,
  gpr: () => 0n,
  ...over,
});

function vmcs12(proc = 0, pin = 0): Vmcs {
  const v = new Vmcs();
  v.set32(F.CPU_BASED_VM_EXEC_CONTROL, proc);
  v.set32(F.PIN_BASED_VM_EXEC_CONTROL, pin);
  return v;
}

describe("nested VMX: does L1 want an exit from L2 (SDM ch. 26 against vmcs12)", () => {
  const mem = new FlatMemory();

  it("26.1.2: CPUID, INVD, XSETBV, the VMX instructions and triple faults always go to L1", () => {
    const v = vmcs12();
    for (const r of [
      ExitReason.CPUID,
      ExitReason.INVD,
      ExitReason.XSETBV,
      ExitReason.VMXON,
      ExitReason.VMLAUNCH,
      ExitReason.VMREAD,
      ExitReason.VMCALL,
      ExitReason.INVVPID,
      ExitReason.TRIPLE_FAULT,
    ])
      expect(l1WantsExit(v, mem, exit(r))).toBe(true);
  });

  it("26.1.3: HLT, RDTSC, INVLPG, MOV DR follow vmcs12's controls, not L0's", () => {
    expect(l1WantsExit(vmcs12(0), mem, exit(ExitReason.HLT))).toBe(false);
    expect(l1WantsExit(vmcs12(Proc.HLT_EXITING), mem, exit(ExitReason.HLT))).toBe(true);
    expect(l1WantsExit(vmcs12(Proc.RDTSC_EXITING), mem, exit(ExitReason.RDTSC))).toBe(true);
    expect(l1WantsExit(vmcs12(Proc.RDTSC_EXITING), mem, exit(ExitReason.RDTSCP))).toBe(true);
    expect(l1WantsExit(vmcs12(0), mem, exit(ExitReason.INVLPG))).toBe(false);
    expect(l1WantsExit(vmcs12(Proc.MOV_DR_EXITING), mem, exit(ExitReason.DR_ACCESS))).toBe(true);
  });

  it("25.6.4: I/O goes to L1 by unconditional I/O exiting or by its bitmaps in L1's memory", () => {
    const io = (port: number, size: number) =>
      exit(ExitReason.IO_INSTRUCTION, { qualification: BigInt(((size - 1) | (port << 16)) >>> 0) });
    expect(l1WantsExit(vmcs12(0), mem, io(0x80, 1))).toBe(false);
    expect(l1WantsExit(vmcs12(Proc.UNCOND_IO_EXITING), mem, io(0x80, 1))).toBe(true);
    const v = vmcs12(Proc.USE_IO_BITMAPS);
    v.set64(F.IO_BITMAP_A, 0x10000n);
    v.set64(F.IO_BITMAP_B, 0x11000n);
    mem.bytes.fill(0, 0x10000, 0x12000);
    mem.bytes[0x10000 + (0x81 >>> 3)] = 1 << (0x81 & 7);
    expect(l1WantsExit(v, mem, io(0x80, 1))).toBe(false);
    expect(l1WantsExit(v, mem, io(0x81, 1))).toBe(true);
    expect(l1WantsExit(v, mem, io(0x80, 2))).toBe(true); // the word access touches 0x81
  });

  it("25.6.9: RDMSR/WRMSR go to L1 without MSR bitmaps, else by its bitmap for ECX", () => {
    const msr = (ecx: number, write: boolean) =>
      exit(write ? ExitReason.WRMSR : ExitReason.RDMSR, { gpr: (n) => (n === 1 ? BigInt(ecx) : 0n) });
    expect(l1WantsExit(vmcs12(0), mem, msr(0x10, false))).toBe(true);
    const v = vmcs12(Proc.USE_MSR_BITMAPS);
    v.set64(F.MSR_BITMAP, 0x20000n);
    mem.bytes.fill(0, 0x20000, 0x21000);
    mem.bytes[0x20000 + 2048 + (0x10 >>> 3)] = 1 << (0x10 & 7); // write-low: IA32_TSC
    expect(l1WantsExit(v, mem, msr(0x10, false))).toBe(false);
    expect(l1WantsExit(v, mem, msr(0x10, true))).toBe(true);
    expect(l1WantsExit(v, mem, msr(0x40000000, false))).toBe(true); // outside both ranges
  });

  it("26.1.3: MOV to CR0 goes to L1 only when it changes an L1-owned bit away from L1's shadow", () => {
    const v = vmcs12();
    v.set64(F.CR0_GUEST_HOST_MASK, 0x1n); // L1 owns PE
    v.set64(F.CR0_READ_SHADOW, 0x1n);
    const mov = (value: bigint) =>
      exit(ExitReason.CR_ACCESS, {
        qualification: 0x300n /* CR0, MOV to, RBX */,
        gpr: (n) => (n === 3 ? value : 0n),
      });
    expect(l1WantsExit(v, mem, mov(0x80000031n))).toBe(false);
    expect(l1WantsExit(v, mem, mov(0x80000030n))).toBe(true);
    // MOV to CR3 with CR3-load exiting, except for a CR3-target value.
    const w = vmcs12(Proc.CR3_LOAD_EXITING);
    w.set32(F.CR3_TARGET_COUNT, 1);
    w.set64(F.CR3_TARGET_VALUE0, 0x5000n);
    const cr3 = (value: bigint) =>
      exit(ExitReason.CR_ACCESS, { qualification: 0x303n, gpr: (n) => (n === 3 ? value : 0n) });
    expect(l1WantsExit(w, mem, cr3(0x5000n))).toBe(false);
    expect(l1WantsExit(w, mem, cr3(0x6000n))).toBe(true);
  });

  it("26.2: exceptions by vmcs12's bitmap (#PF by mask/match), NMIs by its NMI exiting", () => {
    const v = vmcs12();
    v.set32(F.EXCEPTION_BITMAP, 1 << 13);
    const exc = (vector: number, code = 0) =>
      exit(ExitReason.EXCEPTION_NMI, {
        intrInfo: (INTR_INFO_VALID | vector | (IntrType.HW_EXCEPTION << 8)) >>> 0,
        intrErrorCode: code,
      });
    expect(l1WantsExit(v, mem, exc(13))).toBe(true);
    expect(l1WantsExit(v, mem, exc(6))).toBe(false);
    // #PF with bit 14 clear exits when (code & mask) != match.
    v.set32(F.PAGE_FAULT_ERROR_CODE_MASK, 2);
    v.set32(F.PAGE_FAULT_ERROR_CODE_MATCH, 2);
    expect(l1WantsExit(v, mem, exc(14, 2))).toBe(false);
    expect(l1WantsExit(v, mem, exc(14, 0))).toBe(true);
    const nmi = exit(ExitReason.EXCEPTION_NMI, {
      intrInfo: (INTR_INFO_VALID | 2 | (IntrType.NMI << 8)) >>> 0,
    });
    expect(l1WantsExit(vmcs12(0, Pin.NMI_EXITING), mem, nmi)).toBe(true);
    expect(l1WantsExit(vmcs12(0, 0), mem, nmi)).toBe(false);
  });

  it("L0's own exits (external interrupts, EPT) never go to L1", () => {
    const v = vmcs12(0xffffffff, 0xffffffff);
    expect(l1WantsExit(v, mem, exit(ExitReason.EXTERNAL_INTERRUPT))).toBe(false);
    expect(l1WantsExit(v, mem, exit(ExitReason.EPT_VIOLATION))).toBe(false);
    expect(l1WantsExit(v, mem, exit(ExitReason.EPT_MISCONFIG))).toBe(false);
  });

  it("EPT exits are L1's when vmcs12 enables EPT (L2's addresses went through L1's EPT)", () => {
    const v = vmcs12(Proc.ACTIVATE_SECONDARY);
    v.set32(F.SECONDARY_VM_EXEC_CONTROL, Proc2.ENABLE_EPT);
    expect(l1WantsExit(v, mem, exit(ExitReason.EPT_VIOLATION))).toBe(true);
    expect(l1WantsExit(v, mem, exit(ExitReason.EPT_MISCONFIG))).toBe(true);
    // "Enable EPT" without "activate secondary controls" is not in effect.
    v.set32(F.CPU_BASED_VM_EXEC_CONTROL, 0);
    expect(l1WantsExit(v, mem, exit(ExitReason.EPT_VIOLATION))).toBe(false);
  });
});

describe("nested VMX: helpers", () => {
  it("copyGuestState moves every guest-state field and nothing else", () => {
    const r = rig();
    validVmcs(r);
    const to = new Vmcs();
    copyGuestState(r.unit.vmcs, to);
    for (const d of VMCS_FIELDS) {
      if (d.high) continue;
      const want = d.type === FieldType.Guest ? r.unit.vmcs.get64(d.enc) : 0n;
      expect(to.get64(d.enc), d.name).toBe(want);
    }
  });

  it("mergedReadShadow: L1-owned bits from L1's shadow, the rest from L2's own value", () => {
    expect(mergedReadShadow(0x80000031n, 0x20n, 0n)).toBe(0x80000011n);
    expect(mergedReadShadow(0x80000011n, 0x1n, 0x0n)).toBe(0x80000010n);
  });

  it("A.3-A.5: left-out controls are 0 in the allowed-1 halves (what a nested hypervisor offers)", () => {
    const caps = new VmxCaps({
      disabledPin: Pin.PREEMPTION_TIMER,
      disabledProc: Proc.MONITOR_TRAP_FLAG | Proc.USE_TPR_SHADOW,
      disabledProc2: IMPLEMENTED_PROC2 & ~Proc2.ENABLE_VPID,
    });
    const hi = (m: number) => Number(caps.readMsr(m)! >> 32n);
    expect(hi(VmxMsr.TRUE_PINBASED_CTLS) & Pin.PREEMPTION_TIMER).toBe(0);
    expect(hi(VmxMsr.TRUE_PINBASED_CTLS) & Pin.EXT_INTR_EXITING).toBe(Pin.EXT_INTR_EXITING);
    expect(hi(VmxMsr.TRUE_PROCBASED_CTLS) & (Proc.MONITOR_TRAP_FLAG | Proc.USE_TPR_SHADOW)).toBe(0);
    expect(hi(VmxMsr.PROCBASED_CTLS2)).toBe(Proc2.ENABLE_VPID);
    // Without EPT there is no INVEPT; VPID brings INVVPID.
    expect(caps.eptVpidCapLo).toBe(0);
    expect(caps.eptVpidCapHi & 1).toBe(1);
  });

  it("A.6/27.3.1.5: without wait-for-SIPI in IA32_VMX_MISC, a guest in that state fails entry", () => {
    const r = rig(new VmxCaps({ waitForSipi: false }));
    expect(r.caps.readMsr(VmxMsr.MISC)! & 0x100n).toBe(0n);
    validVmcs(r);
    r.unit.vmcs.set32(F.GUEST_ACTIVITY_STATE, 3);
    expect(r.unit.vmlaunch().kind).toBe("entry-failed");
    expect(r.unit.vmcs.get32(F.VM_EXIT_REASON)).toBe(0x80000021);
  });

  it("27.2.1.3: event type 7 (other event) is an invalid injection without the monitor trap flag", () => {
    const r = rig(new VmxCaps({ disabledProc: Proc.MONITOR_TRAP_FLAG }));
    validVmcs(r);
    r.unit.vmcs.set32(F.VM_ENTRY_INTR_INFO_FIELD, (INTR_INFO_VALID | (IntrType.OTHER << 8)) >>> 0);
    expect(r.unit.vmlaunch().kind).toBe("done");
    expect(r.unit.vmcs.get32(F.VM_INSTRUCTION_ERROR)).toBe(7);
  });
});
