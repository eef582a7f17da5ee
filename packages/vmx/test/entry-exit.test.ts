import { describe, expect, it } from "vitest";
import { EntryCtl, ExitCtl, ExitReason, Pin, Proc, Proc2 } from "../src/controls";
import { VmxAbort } from "../src/exit";
import { F, Seg } from "../src/fields";
import { NMI_EXIT_INFO } from "../src/intercepts";
import { type Rig, rig, VMCS_PA, validVmcs } from "./helpers";

function ready(): Rig {
  const r = rig();
  validVmcs(r);
  return r;
}
const or32 = (r: Rig, f: number, bits: number) => r.unit.vmcs.set32(f, r.unit.vmcs.get32(f) | bits);

describe("SDM 27.3.2 loading guest state, 27.6 event injection", () => {
  it("VMLAUNCH loads the guest registers and marks the VMCS launched", () => {
    const r = ready();
    const v = r.unit.vmcs;
    v.set64(F.GUEST_RIP, 0xffffffff81000123n);
    v.set64(F.GUEST_FS_BASE, 0x7fff00001000n);
    v.set32(F.GUEST_SYSENTER_CS, 0x33);
    v.set32(F.GUEST_GDTR_LIMIT, 0x57);
    const out = r.unit.vmlaunch();
    expect(out).toEqual({ kind: "entered", inject: null });
    expect(r.unit.nonRoot).toBe(true);
    expect(v.launched).toBe(true);
    expect(r.cpu.rip).toBe(0xffffffff81000123n);
    expect(r.cpu.rsp).toBe(0x2000n);
    expect(r.cpu.cr3).toBe(0x5000n);
    expect(r.cpu.getSegment(Seg.FS).base).toBe(0x7fff00001000n);
    expect(r.cpu.getSegment(Seg.CS).ar).toBe(0xa09b);
    expect(r.cpu.sysenterCs).toBe(0x33);
    expect(r.cpu.gdtr.limit).toBe(0x57);
    expect(r.cpu.efer & 0x500n).toBe(0x500n); // LMA/LME follow IA-32e mode guest
  });
  it("without load IA32_EFER a 32-bit guest gets LMA = LME = 0; with it the field is loaded", () => {
    const r = ready();
    r.unit.vmcs.set32(F.VM_ENTRY_CONTROLS, r.caps.trueEntry.must1);
    r.unit.vmcs.set32(F.GUEST_CS_AR_BYTES, 0xc09b);
    r.unit.vmlaunch();
    expect(r.cpu.efer & 0x500n).toBe(0n);
    const s = ready();
    or32(s, F.VM_ENTRY_CONTROLS, EntryCtl.LOAD_EFER | EntryCtl.LOAD_PAT);
    s.unit.vmcs.set64(F.GUEST_IA32_EFER, 0x501n);
    s.unit.vmcs.set64(F.GUEST_IA32_PAT, 0x0606060606060606n);
    s.unit.vmlaunch();
    expect(s.cpu.efer).toBe(0x501n);
    expect(s.cpu.pat).toBe(0x0606060606060606n);
  });
  it("injects a hardware exception with error code, and a software interrupt with its length", () => {
    const r = ready();
    r.unit.vmcs.set32(F.VM_ENTRY_INTR_INFO_FIELD, 0x80000b0e);
    r.unit.vmcs.set32(F.VM_ENTRY_EXCEPTION_ERROR_CODE, 6);
    expect(r.unit.vmlaunch()).toEqual({
      kind: "entered",
      inject: { vector: 14, type: 3, errorCode: 6, instructionLength: 0 },
    });
    const s = ready();
    s.unit.vmcs.set32(F.VM_ENTRY_INTR_INFO_FIELD, 0x80000480);
    s.unit.vmcs.set32(F.VM_ENTRY_INSTRUCTION_LEN, 2);
    expect(s.unit.vmlaunch()).toEqual({
      kind: "entered",
      inject: { vector: 0x80, type: 4, errorCode: null, instructionLength: 2 },
    });
  });
  it("an injected external interrupt wakes a HLT guest; an injected NMI blocks NMIs", () => {
    const r = ready();
    r.unit.vmcs.set64(F.GUEST_RFLAGS, 0x202n);
    r.unit.vmcs.set32(F.GUEST_ACTIVITY_STATE, 1);
    r.unit.vmcs.set32(F.VM_ENTRY_INTR_INFO_FIELD, 0x80000030);
    r.unit.vmlaunch();
    expect(r.cpu.activityState).toBe(0);
    const s = ready();
    s.unit.vmcs.set32(F.VM_ENTRY_INTR_INFO_FIELD, 0x80000202);
    s.unit.vmlaunch();
    expect(s.cpu.interruptibility & 8).toBe(8);
  });
  it("type 7 (other event) makes an MTF exit pending without waking a HLT guest; SMI blocking is saved as 0", () => {
    const r = ready();
    r.unit.vmcs.set32(F.GUEST_ACTIVITY_STATE, 1);
    r.unit.vmcs.set32(F.VM_ENTRY_INTR_INFO_FIELD, 0x80000700);
    expect(r.unit.vmlaunch()).toEqual({
      kind: "entered",
      inject: { vector: 0, type: 7, errorCode: null, instructionLength: 0 },
    });
    expect(r.cpu.activityState).toBe(1);
    r.cpu.interruptibility = 4;
    r.unit.exit({ reason: ExitReason.MONITOR_TRAP_FLAG });
    expect(r.unit.vmcs.get32(F.GUEST_INTERRUPTIBILITY_INFO)).toBe(0);
  });
  it("a vectoring entry clears STI blocking", () => {
    const r = ready();
    r.unit.vmcs.set64(F.GUEST_RFLAGS, 0x202n);
    r.unit.vmcs.set32(F.GUEST_INTERRUPTIBILITY_INFO, 1);
    r.unit.vmcs.set32(F.VM_ENTRY_INTR_INFO_FIELD, 0x80000306);
    r.unit.vmlaunch();
    expect(r.cpu.interruptibility).toBe(0);
  });
  it("a guest entered in HLT or wait-for-SIPI stays in that activity state", () => {
    const r = ready();
    r.unit.vmcs.set32(F.GUEST_ACTIVITY_STATE, 3);
    r.unit.vmlaunch();
    expect(r.cpu.activityState).toBe(3);
  });
});

describe("SDM 27.4 MSR loading and 27.8 entry failure (reason 34)", () => {
  it("loads the entry MSR-load area in order", () => {
    const r = ready();
    r.mem.setU32(0x9000, 0x174);
    r.mem.setU64(0x9008, 0x10n);
    r.mem.setU32(0x9010, 0xc0000102);
    r.mem.setU64(0x9018, 0xdeadn);
    r.unit.vmcs.set64(F.VM_ENTRY_MSR_LOAD_ADDR, 0x9000n);
    r.unit.vmcs.set32(F.VM_ENTRY_MSR_LOAD_COUNT, 2);
    expect(r.unit.vmlaunch().kind).toBe("entered");
    expect(r.cpu.msrs.get(0x174)).toBe(0x10n);
    expect(r.cpu.msrs.get(0xc0000102)).toBe(0xdeadn);
  });
  for (const [name, index, hiBits, qual] of [
    ["IA32_FS_BASE may not be loaded", 0xc0000100, 0, 2],
    ["x2APIC MSRs may not be loaded", 0x808, 0, 2],
    ["reserved bits 63:32 of an entry", 0x174, 1, 2],
    ["an MSR WRMSR would #GP on", 0x4b564d01, 0, 2],
  ] as const) {
    it(`${name}: failure exit 34, qualification = entry number`, () => {
      const r = ready();
      r.mem.setU32(0x9000, 0x174);
      r.mem.setU32(0x9010, index);
      r.mem.setU32(0x9014, hiBits);
      r.unit.vmcs.set64(F.VM_ENTRY_MSR_LOAD_ADDR, 0x9000n);
      r.unit.vmcs.set32(F.VM_ENTRY_MSR_LOAD_COUNT, 2);
      expect(r.unit.vmlaunch()).toEqual({ kind: "entry-failed" });
      expect(r.unit.vmcs.get32(F.VM_EXIT_REASON)).toBe((0x80000000 | 34) >>> 0);
      expect(r.unit.vmcs.get64(F.EXIT_QUALIFICATION)).toBe(BigInt(qual));
      expect(r.unit.vmcs.launched).toBe(false);
      expect(r.unit.nonRoot).toBe(false);
      expect(r.cpu.rip).toBe(0x200000n);
    });
  }
});

describe("SDM 28 VM exit", () => {
  function entered(): Rig {
    const r = ready();
    if (r.unit.vmlaunch().kind !== "entered") throw new Error("entry");
    return r;
  }
  it("records the exit information and saves guest state; loads host state", () => {
    const r = entered();
    r.cpu.rip = 0x1234n;
    r.cpu.rsp = 0x4321n;
    r.cpu.rflags = 0x246n;
    r.cpu.cr3 = 0x9000n;
    r.cpu.setSegment(Seg.DS, { selector: 0x23, base: 0x100n, limit: 0xfffff, ar: 0xc0f3 });
    r.cpu.interruptibility = 1;
    const res = r.unit.exit({
      reason: ExitReason.IO_INSTRUCTION,
      qualification: 0x03f80000n,
      instructionLength: 1,
    });
    expect(res).toEqual({ kind: "exited" });
    const v = r.unit.vmcs;
    expect(v.get32(F.VM_EXIT_REASON)).toBe(30);
    expect(v.get64(F.EXIT_QUALIFICATION)).toBe(0x03f80000n);
    expect(v.get32(F.VM_EXIT_INSTRUCTION_LEN)).toBe(1);
    expect(v.get32(F.IDT_VECTORING_INFO_FIELD)).toBe(0);
    expect(v.get64(F.GUEST_RIP)).toBe(0x1234n);
    expect(v.get64(F.GUEST_RSP)).toBe(0x4321n);
    expect(v.get64(F.GUEST_RFLAGS)).toBe(0x246n);
    expect(v.get64(F.GUEST_CR3)).toBe(0x9000n);
    expect(v.get32(F.GUEST_DS_SELECTOR)).toBe(0x23);
    expect(v.get64(F.GUEST_DS_BASE)).toBe(0x100n);
    expect(v.get32(F.GUEST_DS_AR_BYTES)).toBe(0xc0f3);
    expect(v.get32(F.GUEST_INTERRUPTIBILITY_INFO)).toBe(1);
    // Host state (28.5).
    expect(r.unit.nonRoot).toBe(false);
    expect(r.cpu.rip).toBe(0x200000n);
    expect(r.cpu.rsp).toBe(0x8000n);
    expect(r.cpu.rflags).toBe(2n);
    expect(r.cpu.cr3).toBe(0x3000n);
    expect(r.cpu.dr7).toBe(0x400n);
    expect(r.cpu.interruptibility).toBe(0);
    expect(r.cpu.getSegment(Seg.CS)).toEqual({ selector: 8, base: 0n, limit: 0xffffffff, ar: 0xa09b });
    expect(r.cpu.getSegment(Seg.TR)).toEqual({ selector: 0x18, base: 0n, limit: 0x67, ar: 0x8b });
    expect(r.cpu.getSegment(Seg.LDTR).ar & 0x10000).toBe(0x10000);
    expect(r.cpu.gdtr.limit).toBe(0xffff);
    expect(r.cpu.efer & 0x500n).toBe(0x500n);
  });
  it("VMRESUME after an exit re-enters with the saved state", () => {
    const r = entered();
    r.cpu.rip = 0x5555n;
    r.unit.exit({ reason: ExitReason.CPUID, instructionLength: 2 });
    r.unit.vmcs.set64(F.GUEST_RIP, r.unit.vmcs.get64(F.GUEST_RIP) + 2n); // the VMM skips CPUID
    expect(r.unit.vmresume().kind).toBe("entered");
    expect(r.cpu.rip).toBe(0x5557n);
    r.unit.exit({ reason: ExitReason.HLT });
    expect(r.unit.vmlaunch().kind).toBe("done"); // VMLAUNCH of a launched VMCS: error 4
    expect(r.unit.vmcs.get32(F.VM_INSTRUCTION_ERROR)).toBe(4);
  });
  it("the VM-entry interruption-information valid bit is cleared by the exit", () => {
    const r = ready();
    r.unit.vmcs.set32(F.VM_ENTRY_INTR_INFO_FIELD, 0x80000306);
    r.unit.vmlaunch();
    r.unit.exit({ reason: ExitReason.EXCEPTION_NMI, intrInfo: 0x80000306, idtVectoringInfo: 0x80000306 });
    expect(r.unit.vmcs.get32(F.VM_ENTRY_INTR_INFO_FIELD)).toBe(0x306);
    expect(r.unit.vmcs.get32(F.IDT_VECTORING_INFO_FIELD)).toBe(0x80000306);
    expect(r.unit.vmcs.get32(F.VM_EXIT_INTR_INFO)).toBe(0x80000306);
  });
  it("exit controls: save/load EFER and PAT, save debug controls, IA-32e mode guest follows LMA", () => {
    const r = ready();
    or32(
      r,
      F.VM_EXIT_CONTROLS,
      ExitCtl.SAVE_EFER |
        ExitCtl.SAVE_PAT |
        ExitCtl.LOAD_PAT |
        ExitCtl.LOAD_EFER |
        ExitCtl.SAVE_DEBUG_CONTROLS,
    );
    r.unit.vmcs.set64(F.HOST_IA32_EFER, 0xd01n);
    r.unit.vmcs.set64(F.HOST_IA32_PAT, 0x0007040600070406n);
    r.unit.vmlaunch();
    r.cpu.pat = 0x0101010101010101n;
    r.cpu.efer = 0x901n; // guest turned LMA off (not architecturally reachable, checks the copy)
    r.cpu.dr7 = 0x401n;
    r.unit.exit({ reason: ExitReason.HLT });
    const v = r.unit.vmcs;
    expect(v.get64(F.GUEST_IA32_PAT)).toBe(0x0101010101010101n);
    expect(v.get64(F.GUEST_IA32_EFER)).toBe(0x901n);
    expect(v.get64(F.GUEST_DR7)).toBe(0x401n);
    expect(v.get32(F.VM_ENTRY_CONTROLS) & EntryCtl.IA32E_MODE_GUEST).toBe(0);
    expect(r.cpu.pat).toBe(0x0007040600070406n);
    expect(r.cpu.efer).toBe(0xd01n);
  });
  it("MSR-store area receives guest MSRs; MSR-load area loads host MSRs", () => {
    const r = ready();
    r.mem.setU32(0xa000, 0xc0000102);
    r.mem.setU32(0xb000, 0x174);
    r.mem.setU64(0xb008, 0x10n);
    r.unit.vmcs.set64(F.VM_EXIT_MSR_STORE_ADDR, 0xa000n);
    r.unit.vmcs.set32(F.VM_EXIT_MSR_STORE_COUNT, 1);
    r.unit.vmcs.set64(F.VM_EXIT_MSR_LOAD_ADDR, 0xb000n);
    r.unit.vmcs.set32(F.VM_EXIT_MSR_LOAD_COUNT, 1);
    r.unit.vmlaunch();
    r.cpu.msrs.set(0xc0000102, 0xfeedn);
    expect(r.unit.exit({ reason: ExitReason.HLT })).toEqual({ kind: "exited" });
    expect(r.mem.u64(0xa008)).toBe(0xfeedn);
    expect(r.cpu.msrs.get(0x174)).toBe(0x10n);
  });
  it("SDM 28.7: a failing MSR-store entry is a VMX abort (indicator 1) written to the VMCS region", () => {
    const r = ready();
    r.mem.setU32(0xa000, 0x4b564d01);
    r.unit.vmcs.set64(F.VM_EXIT_MSR_STORE_ADDR, 0xa000n);
    r.unit.vmcs.set32(F.VM_EXIT_MSR_STORE_COUNT, 1);
    r.unit.vmlaunch();
    expect(r.unit.exit({ reason: ExitReason.HLT })).toEqual({
      kind: "abort",
      indicator: VmxAbort.SAVING_GUEST_MSRS,
    });
    expect(r.mem.u32(VMCS_PA + 4)).toBe(1);
    expect(r.unit.aborted).toBe(true);
    expect(r.cpu.activityState).toBe(2);
  });
  it("SDM 28.7: a failing host MSR load is a VMX abort (indicator 4)", () => {
    const r = ready();
    r.mem.setU32(0xb000, 0xc0000100);
    r.unit.vmcs.set64(F.VM_EXIT_MSR_LOAD_ADDR, 0xb000n);
    r.unit.vmcs.set32(F.VM_EXIT_MSR_LOAD_COUNT, 1);
    r.unit.vmlaunch();
    expect(r.unit.exit({ reason: ExitReason.HLT })).toEqual({
      kind: "abort",
      indicator: VmxAbort.LOADING_HOST_MSRS,
    });
  });
  it("a 32-bit PAE host: exit loads a 32-bit CS, host PDPTEs from CR3, and aborts (2) on a bad PDPTE", () => {
    const legacy = (r: Rig) => {
      r.cpu.efer = 0x801n;
      r.cpu.setSegment(Seg.CS, { ...r.cpu.getSegment(Seg.CS), ar: 0xc09b });
      const v = r.unit.vmcs;
      v.set32(F.VM_EXIT_CONTROLS, v.get32(F.VM_EXIT_CONTROLS) & ~ExitCtl.HOST_ADDR_SPACE_SIZE);
      v.set32(F.VM_ENTRY_CONTROLS, r.caps.trueEntry.must1);
      v.set32(F.GUEST_CS_AR_BYTES, 0xc09b);
      v.set64(F.HOST_CR3, 0x3000n);
    };
    const r = ready();
    legacy(r);
    r.mem.setU64(0x3000, 0x4001n);
    expect(r.unit.vmlaunch().kind).toBe("entered");
    expect(r.unit.exit({ reason: ExitReason.HLT })).toEqual({ kind: "exited" });
    expect(r.cpu.getSegment(Seg.CS).ar).toBe(0xc09b);
    expect(r.cpu.efer & 0x500n).toBe(0n);
    expect(r.cpu.pdptes[0]).toBe(0x4001n);
    const bad = ready();
    legacy(bad);
    bad.mem.setU64(0x3008, 0x4003n); // present with reserved bit 1
    bad.unit.vmlaunch();
    expect(bad.unit.exit({ reason: ExitReason.HLT })).toEqual({
      kind: "abort",
      indicator: VmxAbort.HOST_PDPTE,
    });
  });
  it("an NMI exit leaves NMIs blocked in the host (28.5.4)", () => {
    const r = ready();
    or32(r, F.PIN_BASED_VM_EXEC_CONTROL, Pin.NMI_EXITING);
    r.unit.vmlaunch();
    r.unit.exit({ reason: ExitReason.EXCEPTION_NMI, intrInfo: NMI_EXIT_INFO });
    expect(r.cpu.interruptibility).toBe(8);
  });
});

describe("VMX non-root operation: VMX instructions exit; VMFUNC; preemption timer", () => {
  function entered(setup?: (r: Rig) => void): Rig {
    const r = ready();
    setup?.(r);
    const out = r.unit.vmlaunch();
    if (out.kind !== "entered")
      throw new Error(`entry ${out.kind} ${r.unit.vmcs.get32(F.VM_INSTRUCTION_ERROR)}`);
    return r;
  }
  it("VMCALL, VMREAD, VMPTRLD, VMLAUNCH, INVEPT... exit with their reasons, even at CPL 3", () => {
    const r = entered();
    r.cpu.setSegment(Seg.CS, { ...r.cpu.getSegment(Seg.CS), selector: 0x0b });
    expect(r.unit.vmcall()).toEqual({ kind: "exit", reason: ExitReason.VMCALL, qualification: 0n });
    r.cpu.setSegment(Seg.CS, { ...r.cpu.getSegment(Seg.CS), selector: 0x08 });
    expect(r.unit.vmread(0n, () => {})).toMatchObject({ kind: "exit", reason: ExitReason.VMREAD });
    expect(r.unit.vmwrite(0n, () => 0n)).toMatchObject({ kind: "exit", reason: ExitReason.VMWRITE });
    expect(r.unit.vmptrld(() => 0n)).toMatchObject({ kind: "exit", reason: ExitReason.VMPTRLD });
    expect(r.unit.vmptrst(() => {})).toMatchObject({ kind: "exit", reason: ExitReason.VMPTRST });
    expect(r.unit.vmclear(() => 0n)).toMatchObject({ kind: "exit", reason: ExitReason.VMCLEAR });
    expect(r.unit.vmlaunch()).toMatchObject({ kind: "exit", reason: ExitReason.VMLAUNCH });
    expect(r.unit.vmresume()).toMatchObject({ kind: "exit", reason: ExitReason.VMRESUME });
    expect(r.unit.vmxoff()).toMatchObject({ kind: "exit", reason: ExitReason.VMXOFF });
    expect(r.unit.vmxon(() => 0n)).toMatchObject({ kind: "exit", reason: ExitReason.VMXON });
    expect(r.unit.invept(1n, () => [0n, 0n])).toMatchObject({ kind: "exit", reason: ExitReason.INVEPT });
    expect(r.unit.invvpid(1n, () => [0n, 0n])).toMatchObject({ kind: "exit", reason: ExitReason.INVVPID });
  });
  it("VMFUNC is #UD unless enabled; leaf 0 switches to a valid EPTP from the list, else exits", () => {
    const plain = entered();
    expect(plain.unit.vmfunc(0, 0)).toMatchObject({ kind: "fault", vector: 6 });
    const r = entered((s) => {
      or32(s, F.CPU_BASED_VM_EXEC_CONTROL, Proc.ACTIVATE_SECONDARY);
      s.unit.vmcs.set32(F.SECONDARY_VM_EXEC_CONTROL, Proc2.ENABLE_EPT | Proc2.ENABLE_VMFUNC);
      s.unit.vmcs.set64(F.EPT_POINTER, 0x6000n | 0x1en);
      s.unit.vmcs.set64(F.VM_FUNCTION_CONTROL, 1n);
      s.unit.vmcs.set64(F.EPTP_LIST_ADDRESS, 0xc000n);
      s.mem.setU64(0xc000 + 8 * 3, 0x7000n | 0x1en);
      s.mem.setU64(0xc000 + 8 * 4, 0x7000n | 0x1fn); // memory type 7: invalid
    });
    expect(r.unit.vmfunc(0, 3)).toEqual({ kind: "done" });
    expect(r.unit.vmcs.get64(F.EPT_POINTER)).toBe(0x701en);
    expect(r.unit.vmfunc(0, 4)).toMatchObject({ kind: "exit", reason: ExitReason.VMFUNC });
    expect(r.unit.vmfunc(0, 512)).toMatchObject({ kind: "exit", reason: ExitReason.VMFUNC });
    expect(r.unit.vmfunc(1, 0)).toMatchObject({ kind: "exit", reason: ExitReason.VMFUNC });
  });
  it("PAUSE-loop exiting: gaps above PLE_Gap restart the loop; a loop longer than PLE_Window exits", () => {
    const r = entered((s) => {
      or32(s, F.CPU_BASED_VM_EXEC_CONTROL, Proc.ACTIVATE_SECONDARY);
      s.unit.vmcs.set32(F.SECONDARY_VM_EXEC_CONTROL, Proc2.PAUSE_LOOP_EXITING);
      s.unit.vmcs.set32(F.PLE_GAP, 128);
      s.unit.vmcs.set32(F.PLE_WINDOW, 4096);
    });
    const seq = (ts: number[], cpl = 0) => ts.map((t) => r.unit.pause(cpl, t));
    expect(seq([1000, 1100, 1200])).toEqual([-1, -1, -1]);
    expect(seq([2000, 2100])).toEqual([-1, -1]); // gap 800 > 128: a new loop began at 2000
    const spin: number[] = [];
    for (let t = 2200; t <= 6200; t += 100) spin.push(t);
    const out = seq(spin);
    expect(out.slice(0, -2).every((x) => x === -1)).toBe(true);
    expect(out.at(-1)).toBe(ExitReason.PAUSE); // 6200 - 2000 > 4096
    expect(seq([7000], 3)).toEqual([-1]); // CPL 3 PAUSEs are not counted
  });
  it("the preemption timer counts down every 2^rate TSC ticks and the exit saves 0", () => {
    const r = entered((s) => {
      or32(s, F.PIN_BASED_VM_EXEC_CONTROL, Pin.PREEMPTION_TIMER);
      or32(s, F.VM_EXIT_CONTROLS, ExitCtl.SAVE_PREEMPTION_TIMER);
      s.unit.vmcs.set32(F.VMX_PREEMPTION_TIMER_VALUE, 3);
    });
    expect(r.unit.preemptionTick(32 * 2 + 31)).toBe(false); // rate 5: 2 decrements
    expect(r.unit.preemptionTimer).toBe(1);
    expect(r.unit.preemptionTick(1)).toBe(true);
    r.unit.exit({ reason: ExitReason.PREEMPTION_TIMER });
    expect(r.unit.vmcs.get32(F.VMX_PREEMPTION_TIMER_VALUE)).toBe(0);
  });
  it("an exit for another reason saves the remaining timer value", () => {
    const r = entered((s) => {
      or32(s, F.PIN_BASED_VM_EXEC_CONTROL, Pin.PREEMPTION_TIMER);
      or32(s, F.VM_EXIT_CONTROLS, ExitCtl.SAVE_PREEMPTION_TIMER);
      s.unit.vmcs.set32(F.VMX_PREEMPTION_TIMER_VALUE, 100);
    });
    r.unit.preemptionTick(320);
    r.unit.exit({ reason: ExitReason.HLT });
    expect(r.unit.vmcs.get32(F.VMX_PREEMPTION_TIMER_VALUE)).toBe(90);
  });
  it("a 32-bit PAE guest without EPT gets its PDPTEs from the table CR3 points to", () => {
    const r = entered((s) => {
      s.unit.vmcs.set32(F.VM_ENTRY_CONTROLS, s.caps.trueEntry.must1);
      s.unit.vmcs.set32(F.GUEST_CS_AR_BYTES, 0xc09b);
      s.unit.vmcs.set64(F.GUEST_CR3, 0x5020n);
      s.mem.setU64(0x5020, 0x6001n);
      s.mem.setU64(0x5038, 0x7001n);
    });
    expect(r.cpu.pdptes).toEqual([0x6001n, 0n, 0n, 0x7001n]);
  });
});

describe("unrestricted guest", () => {
  it("enters a real-mode guest (CR0.PE = PG = 0) with EPT", () => {
    const r = ready();
    const v = r.unit.vmcs;
    or32(r, F.CPU_BASED_VM_EXEC_CONTROL, Proc.ACTIVATE_SECONDARY);
    v.set32(F.SECONDARY_VM_EXEC_CONTROL, Proc2.ENABLE_EPT | Proc2.UNRESTRICTED_GUEST);
    v.set64(F.EPT_POINTER, 0x601en);
    v.set32(F.VM_ENTRY_CONTROLS, r.caps.trueEntry.must1);
    v.set64(F.GUEST_CR0, 0x30n);
    v.set64(F.GUEST_CR4, 0x2000n);
    for (let s = 0; s < 6; s++) {
      v.set32(F.GUEST_ES_SELECTOR + 2 * s, 0xf000);
      v.set64(F.GUEST_ES_BASE + 2 * s, 0xf0000n);
      v.set32(F.GUEST_ES_LIMIT + 2 * s, 0xffff);
      v.set32(F.GUEST_ES_AR_BYTES + 2 * s, s === 1 ? 0x9b : 0x93);
    }
    v.set64(F.GUEST_RIP, 0xfff0n);
    expect(r.unit.vmlaunch()).toMatchObject({ kind: "entered" });
    expect(r.cpu.cr0 & 0x80000001n).toBe(0n);
    expect(r.cpu.getSegment(Seg.CS).base).toBe(0xf0000n);
  });
});
