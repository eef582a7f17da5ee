/**
 * SDM Vol. 3C 27.2-27.3: one test per VM-entry check. Each starts from a VMCS that passes every
 * check (helpers.ts `validVmcs`, possibly reshaped into another valid guest/host shape), makes
 * exactly one field wrong, and expects (1) the check functions to name that SDM rule and
 * (2) VMLAUNCH to fail the way the SDM says: VMfailValid(7) for controls, VMfailValid(8) for host
 * state, a VM-entry failure exit with reason 33 (and its qualification) for guest state.
 */
import { describe, expect, it } from "vitest";
import { EntryCtl, ExitCtl, Pin, Proc, Proc2, VmError } from "../src/controls";
import { entryEnv } from "../src/entry";
import { type CheckInput, ENTRY_CHECK_INPUTS } from "../src/entry-check-cache";
import { checkControls } from "../src/entry-checks-controls";
import { checkGuestPdptes, checkGuestState } from "../src/entry-checks-guest";
import { checkHostState } from "../src/entry-checks-host";
import { encWidth, F, FieldWidth, Seg, VMCS_FIELDS } from "../src/fields";
import type { Vmcs } from "../src/vmcs";
import { type Rig, rig, validVmcs } from "./helpers";

type Mutate = (v: Vmcs, r: Rig) => void;

const VALID_EPTP = 0x6000n | 0x1en; // WB, 4-level walk

const or32 = (v: Vmcs, f: number, bits: number) => v.set32(f, v.get32(f) | bits);
const andNot32 = (v: Vmcs, f: number, bits: number) => v.set32(f, v.get32(f) & ~bits);
function secondary(v: Vmcs, bits: number) {
  or32(v, F.CPU_BASED_VM_EXEC_CONTROL, Proc.ACTIVATE_SECONDARY);
  or32(v, F.SECONDARY_VM_EXEC_CONTROL, bits);
  if (bits & (Proc2.ENABLE_EPT | Proc2.UNRESTRICTED_GUEST)) v.set64(F.EPT_POINTER, VALID_EPTP);
}
/** Unrestricted guest (with EPT). */
const unrestricted: Mutate = (v) => secondary(v, Proc2.ENABLE_EPT | Proc2.UNRESTRICTED_GUEST);
/** A 32-bit protected-mode guest with PAE paging, on the 64-bit host. */
const guest32: Mutate = (v) => {
  andNot32(v, F.VM_ENTRY_CONTROLS, EntryCtl.IA32E_MODE_GUEST);
  v.set32(F.GUEST_CS_AR_BYTES, 0xc09b);
};
/** A virtual-8086 guest. */
const v86: Mutate = (v, r) => {
  guest32(v, r);
  v.set64(F.GUEST_RFLAGS, 0x20002n);
  for (const s of [0, 1, 2, 3, 4, 5]) {
    v.set32(F.GUEST_ES_SELECTOR + 2 * s, 0x1000);
    v.set64(F.GUEST_ES_BASE + 2 * s, 0x10000n);
    v.set32(F.GUEST_ES_LIMIT + 2 * s, 0xffff);
    v.set32(F.GUEST_ES_AR_BYTES + 2 * s, 0xf3);
  }
};
/** A host outside IA-32e mode (the processor executing VMLAUNCH is in 32-bit protected mode). */
const legacyHost: Mutate = (v, r) => {
  r.cpu.efer = 0x801n;
  r.cpu.setSegment(Seg.CS, { ...r.cpu.getSegment(Seg.CS), ar: 0xc09b });
  guest32(v, r);
  andNot32(v, F.VM_EXIT_CONTROLS, ExitCtl.HOST_ADDR_SPACE_SIZE);
};
/** A ring-3 64-bit guest. */
const ring3: Mutate = (v) => {
  v.set32(F.GUEST_CS_SELECTOR, 0x0b);
  v.set32(F.GUEST_CS_AR_BYTES, 0xa0fb);
  v.set32(F.GUEST_SS_SELECTOR, 0x13);
  v.set32(F.GUEST_SS_AR_BYTES, 0xc0f3);
};
const usableLdtr: Mutate = (v) => {
  v.set32(F.GUEST_LDTR_SELECTOR, 0x20);
  v.set32(F.GUEST_LDTR_AR_BYTES, 0x82);
  v.set32(F.GUEST_LDTR_LIMIT, 0xffff);
};
const inject =
  (info: number, code?: number, len?: number): Mutate =>
  (v) => {
    v.set32(F.VM_ENTRY_INTR_INFO_FIELD, (0x80000000 | info) >>> 0);
    if (code !== undefined) v.set32(F.VM_ENTRY_EXCEPTION_ERROR_CODE, code);
    if (len !== undefined) v.set32(F.VM_ENTRY_INSTRUCTION_LEN, len);
  };
const withIf: Mutate = (v) => v.set64(F.GUEST_RFLAGS, 0x202n);
const all =
  (...ms: Mutate[]): Mutate =>
  (v, r) => {
    for (const m of ms) m(v, r);
  };
const set64 =
  (f: number, x: bigint): Mutate =>
  (v) =>
    v.set64(f, x);
const set32 =
  (f: number, x: number): Mutate =>
  (v) =>
    v.set32(f, x);
const NONCANON = 0x0000800000000000n;

/** [rule, baseline reshaping (valid), the one wrong field, expected qualification for 27.3]. */
const CASES: [string, Mutate | null, Mutate, number?][] = [
  // 27.2.1.1 VM-execution control fields
  [
    "27.2.1.1 pin-based controls reserved bits (IA32_VMX_TRUE_PINBASED_CTLS)",
    null,
    (v) => or32(v, F.PIN_BASED_VM_EXEC_CONTROL, Pin.POSTED_INTERRUPTS),
  ],
  [
    "27.2.1.1 processor-based controls reserved bits (IA32_VMX_TRUE_PROCBASED_CTLS)",
    null,
    (v) => or32(v, F.CPU_BASED_VM_EXEC_CONTROL, Proc.ACTIVATE_TERTIARY),
  ],
  [
    "27.2.1.1 secondary processor-based controls reserved bits (IA32_VMX_PROCBASED_CTLS2)",
    null,
    (v) => secondary(v, Proc2.VMCS_SHADOWING),
  ],
  ["27.2.1.1 CR3-target count <= 4", null, set32(F.CR3_TARGET_COUNT, 5)],
  [
    "27.2.1.1 I/O bitmap A address",
    (v) => {
      or32(v, F.CPU_BASED_VM_EXEC_CONTROL, Proc.USE_IO_BITMAPS);
      v.set64(F.IO_BITMAP_A, 0x4000n);
      v.set64(F.IO_BITMAP_B, 0x5000n);
    },
    set64(F.IO_BITMAP_A, 0x4001n),
  ],
  [
    "27.2.1.1 I/O bitmap B address",
    (v) => {
      or32(v, F.CPU_BASED_VM_EXEC_CONTROL, Proc.USE_IO_BITMAPS);
      v.set64(F.IO_BITMAP_A, 0x4000n);
      v.set64(F.IO_BITMAP_B, 0x5000n);
    },
    set64(F.IO_BITMAP_B, 1n << 45n),
  ],
  [
    "27.2.1.1 MSR-bitmap address",
    (v) => {
      or32(v, F.CPU_BASED_VM_EXEC_CONTROL, Proc.USE_MSR_BITMAPS);
      v.set64(F.MSR_BITMAP, 0x4000n);
    },
    set64(F.MSR_BITMAP, 0x4008n),
  ],
  [
    "27.2.1.1 virtual-APIC address",
    (v) => {
      or32(v, F.CPU_BASED_VM_EXEC_CONTROL, Proc.USE_TPR_SHADOW);
      v.set64(F.VIRTUAL_APIC_PAGE_ADDR, 0x6000n);
    },
    set64(F.VIRTUAL_APIC_PAGE_ADDR, 0x6010n),
  ],
  [
    "27.2.1.1 TPR threshold bits 31:4",
    (v) => {
      or32(v, F.CPU_BASED_VM_EXEC_CONTROL, Proc.USE_TPR_SHADOW);
      v.set64(F.VIRTUAL_APIC_PAGE_ADDR, 0x6000n);
    },
    set32(F.TPR_THRESHOLD, 0x10),
  ],
  [
    "27.2.1.1 TPR threshold bits 3:0 <= VTPR bits 7:4",
    (v, r) => {
      or32(v, F.CPU_BASED_VM_EXEC_CONTROL, Proc.USE_TPR_SHADOW);
      v.set64(F.VIRTUAL_APIC_PAGE_ADDR, 0x6000n);
      r.mem.bytes[0x6080] = 0x40;
      v.set32(F.TPR_THRESHOLD, 4);
    },
    set32(F.TPR_THRESHOLD, 5),
  ],
  [
    "27.2.1.1 virtual NMIs need NMI exiting",
    null,
    (v) => or32(v, F.PIN_BASED_VM_EXEC_CONTROL, Pin.VIRTUAL_NMIS),
  ],
  [
    "27.2.1.1 NMI-window exiting needs virtual NMIs",
    (v) => or32(v, F.PIN_BASED_VM_EXEC_CONTROL, Pin.NMI_EXITING),
    (v) => or32(v, F.CPU_BASED_VM_EXEC_CONTROL, Proc.NMI_WINDOW_EXITING),
  ],
  [
    "27.2.1.1 APIC-access address",
    (v) => {
      secondary(v, Proc2.VIRTUALIZE_APIC_ACCESSES);
      v.set64(F.APIC_ACCESS_ADDR, 0x7000n);
    },
    set64(F.APIC_ACCESS_ADDR, 0x7001n),
  ],
  [
    "27.2.1.1 VPID != 0",
    (v) => {
      secondary(v, Proc2.ENABLE_VPID);
      v.set32(F.VIRTUAL_PROCESSOR_ID, 1);
    },
    set32(F.VIRTUAL_PROCESSOR_ID, 0),
  ],
  ["27.2.1.1 EPTP valid", (v) => secondary(v, Proc2.ENABLE_EPT), set64(F.EPT_POINTER, 0x6006n)],
  [
    "27.2.1.1 unrestricted guest needs enable EPT",
    unrestricted,
    (v) => andNot32(v, F.SECONDARY_VM_EXEC_CONTROL, Proc2.ENABLE_EPT),
  ],
  [
    "27.2.1.1 VM-function controls reserved bits (IA32_VMX_VMFUNC)",
    (v) => secondary(v, Proc2.ENABLE_VMFUNC),
    set64(F.VM_FUNCTION_CONTROL, 2n),
  ],
  [
    "27.2.1.1 EPTP switching needs enable EPT",
    (v) => secondary(v, Proc2.ENABLE_VMFUNC),
    set64(F.VM_FUNCTION_CONTROL, 1n),
  ],
  [
    "27.2.1.1 EPTP-list address",
    (v) => {
      secondary(v, Proc2.ENABLE_VMFUNC | Proc2.ENABLE_EPT);
      v.set64(F.VM_FUNCTION_CONTROL, 1n);
      v.set64(F.EPTP_LIST_ADDRESS, 0x8000n);
    },
    set64(F.EPTP_LIST_ADDRESS, 0x8008n),
  ],
  // 27.2.1.2 VM-exit control fields
  [
    "27.2.1.2 VM-exit controls reserved bits (IA32_VMX_TRUE_EXIT_CTLS)",
    null,
    (v) => or32(v, F.VM_EXIT_CONTROLS, ExitCtl.LOAD_PERF_GLOBAL_CTRL),
  ],
  [
    "27.2.1.2 save preemption-timer value needs activate preemption timer",
    null,
    (v) => or32(v, F.VM_EXIT_CONTROLS, ExitCtl.SAVE_PREEMPTION_TIMER),
  ],
  [
    "27.2.1.2 VM-exit MSR-store address",
    (v) => {
      v.set32(F.VM_EXIT_MSR_STORE_COUNT, 1);
      v.set64(F.VM_EXIT_MSR_STORE_ADDR, 0x9000n);
    },
    set64(F.VM_EXIT_MSR_STORE_ADDR, 0x9008n),
  ],
  [
    "27.2.1.2 VM-exit MSR-load address",
    (v) => {
      v.set32(F.VM_EXIT_MSR_LOAD_COUNT, 2);
      v.set64(F.VM_EXIT_MSR_LOAD_ADDR, 0x9000n);
    },
    set64(F.VM_EXIT_MSR_LOAD_ADDR, (1n << 39n) - 16n),
  ],
  // 27.2.1.3 VM-entry control fields
  [
    "27.2.1.3 VM-entry controls reserved bits (IA32_VMX_TRUE_ENTRY_CTLS)",
    null,
    (v) => or32(v, F.VM_ENTRY_CONTROLS, EntryCtl.LOAD_PERF_GLOBAL_CTRL),
  ],
  ["27.2.1.3 event injection: interruption type", withIf, inject(0x100 | 0x20)],
  ["27.2.1.3 event injection: NMI vector is 2", null, inject(0x200 | 3)],
  ["27.2.1.3 event injection: other-event vector is 0", inject(0x700), inject(0x700 | 1)],
  ["27.2.1.3 event injection: exception vector <= 31", null, inject(0x300 | 32)],
  ["27.2.1.3 event injection: deliver-error-code bit", null, inject(0x300 | 13)],
  ["27.2.1.3 event injection: reserved bits 30:12", withIf, inject(0x20 | 0x1000)],
  ["27.2.1.3 event injection: error code bits 31:16", null, inject(0x800 | 0x300 | 13, 0x10000)],
  ["27.2.1.3 event injection: instruction length 1-15", null, inject(0x400 | 0x80, undefined, 0)],
  [
    "27.2.1.3 VM-entry MSR-load address",
    (v, r) => {
      v.set32(F.VM_ENTRY_MSR_LOAD_COUNT, 1);
      v.set64(F.VM_ENTRY_MSR_LOAD_ADDR, 0x9000n);
      r.mem.setU32(0x9000, 0x10); // IA32_TIME_STAMP_COUNTER
    },
    set64(F.VM_ENTRY_MSR_LOAD_ADDR, 0x9001n),
  ],
  // 27.2.2 host control registers and MSRs
  ["27.2.2 host CR0 fixed bits", null, set64(F.HOST_CR0, 0x80000011n)],
  ["27.2.2 host CR4 fixed bits", null, set64(F.HOST_CR4, 0x20n)],
  ["27.2.2 host CR3 bits beyond MAXPHYADDR", null, set64(F.HOST_CR3, 1n << 45n)],
  ["27.2.2 host IA32_SYSENTER_ESP canonical", null, set64(F.HOST_IA32_SYSENTER_ESP, NONCANON)],
  ["27.2.2 host IA32_SYSENTER_EIP canonical", null, set64(F.HOST_IA32_SYSENTER_EIP, NONCANON)],
  [
    "27.2.2 host IA32_PAT memory types",
    (v) => {
      or32(v, F.VM_EXIT_CONTROLS, ExitCtl.LOAD_PAT);
      v.set64(F.HOST_IA32_PAT, 0x0007040600070406n);
    },
    set64(F.HOST_IA32_PAT, 0x0007040600070402n),
  ],
  [
    "27.2.2 host IA32_EFER reserved bits",
    (v) => {
      or32(v, F.VM_EXIT_CONTROLS, ExitCtl.LOAD_EFER);
      v.set64(F.HOST_IA32_EFER, 0xd01n);
    },
    set64(F.HOST_IA32_EFER, 0xd03n),
  ],
  [
    "27.2.2 host IA32_EFER.LMA = host address-space size",
    (v) => {
      or32(v, F.VM_EXIT_CONTROLS, ExitCtl.LOAD_EFER);
      v.set64(F.HOST_IA32_EFER, 0xd01n);
    },
    set64(F.HOST_IA32_EFER, 0x901n),
  ],
  [
    "27.2.2 host IA32_EFER.LME = host address-space size",
    (v) => {
      or32(v, F.VM_EXIT_CONTROLS, ExitCtl.LOAD_EFER);
      v.set64(F.HOST_IA32_EFER, 0xd01n);
    },
    set64(F.HOST_IA32_EFER, 0xc01n),
  ],
  // 27.2.3 host segment and descriptor-table registers
  ["27.2.3 host selector RPL and TI are 0", null, set32(F.HOST_DS_SELECTOR, 0x13)],
  ["27.2.3 host CS selector != 0", null, set32(F.HOST_CS_SELECTOR, 0)],
  ["27.2.3 host TR selector != 0", null, set32(F.HOST_TR_SELECTOR, 0)],
  ["27.2.3 host SS selector != 0 outside 64-bit host", legacyHost, set32(F.HOST_SS_SELECTOR, 0)],
  ["27.2.3 host FS/GS/GDTR/IDTR/TR base canonical", null, set64(F.HOST_GS_BASE, NONCANON)],
  // 27.2.4 address-space size
  [
    "27.2.4 IA-32e mode guest needs the processor in IA-32e mode",
    legacyHost,
    (v) => or32(v, F.VM_ENTRY_CONTROLS, EntryCtl.IA32E_MODE_GUEST),
  ],
  [
    "27.2.4 host address-space size needs the processor in IA-32e mode",
    legacyHost,
    (v) => or32(v, F.VM_EXIT_CONTROLS, ExitCtl.HOST_ADDR_SPACE_SIZE),
  ],
  [
    "27.2.4 host address-space size is 1 in IA-32e mode",
    null,
    (v) => andNot32(v, F.VM_EXIT_CONTROLS, ExitCtl.HOST_ADDR_SPACE_SIZE),
  ],
  ["27.2.4 host CR4.PCIDE is 0 outside 64-bit host", legacyHost, set64(F.HOST_CR4, 0x22020n)],
  ["27.2.4 host RIP bits 63:32 are 0 outside 64-bit host", legacyHost, set64(F.HOST_RIP, 1n << 32n)],
  ["27.2.4 host CR4.PAE is 1 in 64-bit host", null, set64(F.HOST_CR4, 0x2000n)],
  ["27.2.4 host RIP canonical", null, set64(F.HOST_RIP, NONCANON)],
  // 27.3.1.1 guest control registers, debug registers, MSRs
  ["27.3.1.1 guest CR0 fixed bits", null, set64(F.GUEST_CR0, 0x80000011n)],
  ["27.3.1.1 guest CR0.PG needs CR0.PE", unrestricted, set64(F.GUEST_CR0, 0x80000030n)],
  ["27.3.1.1 guest CR4 fixed bits", null, set64(F.GUEST_CR4, 0x20n)],
  [
    "27.3.1.1 guest IA32_DEBUGCTL reserved bits",
    (v) => or32(v, F.VM_ENTRY_CONTROLS, EntryCtl.LOAD_DEBUG_CONTROLS),
    set64(F.GUEST_IA32_DEBUGCTL, 4n),
  ],
  ["27.3.1.1 IA-32e mode guest needs CR0.PG", unrestricted, set64(F.GUEST_CR0, 0x31n)],
  ["27.3.1.1 IA-32e mode guest needs CR4.PAE", null, set64(F.GUEST_CR4, 0x2000n)],
  ["27.3.1.1 CR4.PCIDE needs IA-32e mode guest", guest32, set64(F.GUEST_CR4, 0x22020n)],
  ["27.3.1.1 guest CR3 bits beyond MAXPHYADDR", null, set64(F.GUEST_CR3, 1n << 40n)],
  [
    "27.3.1.1 guest DR7 bits 63:32",
    (v) => or32(v, F.VM_ENTRY_CONTROLS, EntryCtl.LOAD_DEBUG_CONTROLS),
    set64(F.GUEST_DR7, (1n << 32n) | 0x400n),
  ],
  ["27.3.1.1 guest IA32_SYSENTER_ESP canonical", null, set64(F.GUEST_SYSENTER_ESP, NONCANON)],
  ["27.3.1.1 guest IA32_SYSENTER_EIP canonical", null, set64(F.GUEST_SYSENTER_EIP, NONCANON)],
  [
    "27.3.1.1 guest IA32_PAT memory types",
    (v) => {
      or32(v, F.VM_ENTRY_CONTROLS, EntryCtl.LOAD_PAT);
      v.set64(F.GUEST_IA32_PAT, 6n);
    },
    set64(F.GUEST_IA32_PAT, 3n),
  ],
  [
    "27.3.1.1 guest IA32_EFER reserved bits",
    (v) => {
      or32(v, F.VM_ENTRY_CONTROLS, EntryCtl.LOAD_EFER);
      v.set64(F.GUEST_IA32_EFER, 0xd01n);
    },
    set64(F.GUEST_IA32_EFER, 0x1d01n),
  ],
  [
    "27.3.1.1 guest IA32_EFER.LMA = IA-32e mode guest",
    (v) => {
      or32(v, F.VM_ENTRY_CONTROLS, EntryCtl.LOAD_EFER);
      v.set64(F.GUEST_IA32_EFER, 0xd01n);
    },
    set64(F.GUEST_IA32_EFER, 0x901n),
  ],
  [
    "27.3.1.1 guest IA32_EFER.LME = LMA",
    (v) => {
      or32(v, F.VM_ENTRY_CONTROLS, EntryCtl.LOAD_EFER);
      v.set64(F.GUEST_IA32_EFER, 0xd01n);
    },
    set64(F.GUEST_IA32_EFER, 0xc01n),
  ],
  // 27.3.1.2 guest segment registers
  ["27.3.1.2 TR selector TI = 0", null, set32(F.GUEST_TR_SELECTOR, 0x1c)],
  ["27.3.1.2 LDTR selector TI = 0", usableLdtr, set32(F.GUEST_LDTR_SELECTOR, 0x24)],
  ["27.3.1.2 SS.RPL = CS.RPL", null, set32(F.GUEST_SS_SELECTOR, 0x13)],
  ["27.3.1.2 virtual-8086 base = selector << 4", v86, set64(F.GUEST_DS_BASE, 0x10010n)],
  ["27.3.1.2 TR/FS/GS base canonical", null, set64(F.GUEST_FS_BASE, NONCANON)],
  ["27.3.1.2 LDTR base canonical", usableLdtr, set64(F.GUEST_LDTR_BASE, NONCANON)],
  ["27.3.1.2 CS base bits 63:32", null, set64(F.GUEST_CS_BASE, 1n << 32n)],
  ["27.3.1.2 SS/DS/ES base bits 63:32", null, set64(F.GUEST_DS_BASE, 1n << 32n)],
  ["27.3.1.2 virtual-8086 limit = FFFFH", v86, set32(F.GUEST_DS_LIMIT, 0xfffff)],
  ["27.3.1.2 virtual-8086 access rights = F3H", v86, set32(F.GUEST_DS_AR_BYTES, 0xf2)],
  ["27.3.1.2 CS type", null, set32(F.GUEST_CS_AR_BYTES, 0xa093)],
  ["27.3.1.2 CS S = 1", null, set32(F.GUEST_CS_AR_BYTES, 0xa08b)],
  ["27.3.1.2 CS DPL = 0 for type 3", unrestricted, set32(F.GUEST_CS_AR_BYTES, 0xc0f3)],
  ["27.3.1.2 CS DPL = SS DPL (non-conforming)", null, set32(F.GUEST_CS_AR_BYTES, 0xa0bb)],
  [
    "27.3.1.2 CS DPL <= SS DPL (conforming)",
    set32(F.GUEST_CS_AR_BYTES, 0xa09f),
    set32(F.GUEST_CS_AR_BYTES, 0xa0bf),
  ],
  ["27.3.1.2 CS P = 1", null, set32(F.GUEST_CS_AR_BYTES, 0xa01b)],
  ["27.3.1.2 CS reserved bits 11:8", null, set32(F.GUEST_CS_AR_BYTES, 0xa19b)],
  ["27.3.1.2 CS D/B = 0 when L = 1", null, set32(F.GUEST_CS_AR_BYTES, 0xe09b)],
  ["27.3.1.2 CS G and limit", null, set32(F.GUEST_CS_LIMIT, 0xfff00000)],
  ["27.3.1.2 CS reserved bits 31:17", null, set32(F.GUEST_CS_AR_BYTES, 0x2a09b)],
  ["27.3.1.2 SS type 3 or 7", null, set32(F.GUEST_SS_AR_BYTES, 0xc091)],
  ["27.3.1.2 SS DPL = SS RPL", set32(F.GUEST_CS_AR_BYTES, 0xa09f), set32(F.GUEST_SS_AR_BYTES, 0xc0b3)],
  [
    "27.3.1.2 SS DPL = 0 in real mode or CS type 3",
    all(unrestricted, set32(F.GUEST_CS_AR_BYTES, 0xc093)),
    set32(F.GUEST_SS_AR_BYTES, 0xc0f3),
  ],
  ["27.3.1.2 SS S = 1", null, set32(F.GUEST_SS_AR_BYTES, 0xc083)],
  ["27.3.1.2 SS P = 1", null, set32(F.GUEST_SS_AR_BYTES, 0xc013)],
  ["27.3.1.2 SS reserved bits 11:8", null, set32(F.GUEST_SS_AR_BYTES, 0xc193)],
  ["27.3.1.2 SS G and limit", null, set32(F.GUEST_SS_LIMIT, 0xfff00000)],
  ["27.3.1.2 SS reserved bits 31:17", null, set32(F.GUEST_SS_AR_BYTES, 0x2c093)],
  ["27.3.1.2 DS/ES/FS/GS type accessed", null, set32(F.GUEST_DS_AR_BYTES, 0xc092)],
  ["27.3.1.2 DS/ES/FS/GS code segment readable", null, set32(F.GUEST_ES_AR_BYTES, 0xc099)],
  ["27.3.1.2 DS/ES/FS/GS S = 1", null, set32(F.GUEST_FS_AR_BYTES, 0xc083)],
  ["27.3.1.2 DS/ES/FS/GS DPL >= RPL", null, set32(F.GUEST_GS_SELECTOR, 0x13)],
  ["27.3.1.2 DS/ES/FS/GS P = 1", null, set32(F.GUEST_DS_AR_BYTES, 0xc013)],
  ["27.3.1.2 DS/ES/FS/GS reserved bits 11:8", null, set32(F.GUEST_DS_AR_BYTES, 0xc193)],
  ["27.3.1.2 DS/ES/FS/GS G and limit", null, set32(F.GUEST_DS_LIMIT, 0xfff00000)],
  ["27.3.1.2 DS/ES/FS/GS reserved bits 31:17", null, set32(F.GUEST_DS_AR_BYTES, 0x2c093)],
  ["27.3.1.2 TR type busy TSS", null, set32(F.GUEST_TR_AR_BYTES, 0x89)],
  ["27.3.1.2 TR S = 0", null, set32(F.GUEST_TR_AR_BYTES, 0x9b)],
  ["27.3.1.2 TR P = 1", null, set32(F.GUEST_TR_AR_BYTES, 0x0b)],
  ["27.3.1.2 TR reserved bits 11:8", null, set32(F.GUEST_TR_AR_BYTES, 0x18b)],
  ["27.3.1.2 TR G and limit", null, set32(F.GUEST_TR_LIMIT, 0x100000)],
  ["27.3.1.2 TR usable", null, set32(F.GUEST_TR_AR_BYTES, 0x1008b)],
  ["27.3.1.2 TR reserved bits 31:17", null, set32(F.GUEST_TR_AR_BYTES, 0x2008b)],
  ["27.3.1.2 LDTR type 2", usableLdtr, set32(F.GUEST_LDTR_AR_BYTES, 0x83)],
  ["27.3.1.2 LDTR S = 0", usableLdtr, set32(F.GUEST_LDTR_AR_BYTES, 0x92)],
  ["27.3.1.2 LDTR P = 1", usableLdtr, set32(F.GUEST_LDTR_AR_BYTES, 0x02)],
  ["27.3.1.2 LDTR reserved bits 11:8", usableLdtr, set32(F.GUEST_LDTR_AR_BYTES, 0x182)],
  ["27.3.1.2 LDTR G and limit", usableLdtr, set32(F.GUEST_LDTR_LIMIT, 0x100000)],
  ["27.3.1.2 LDTR reserved bits 31:17", usableLdtr, set32(F.GUEST_LDTR_AR_BYTES, 0x20082)],
  // 27.3.1.3 descriptor-table registers
  ["27.3.1.3 GDTR/IDTR base canonical", null, set64(F.GUEST_IDTR_BASE, NONCANON)],
  ["27.3.1.3 GDTR/IDTR limit bits 31:16", null, set32(F.GUEST_GDTR_LIMIT, 0x10000)],
  // 27.3.1.4 RIP and RFLAGS
  ["27.3.1.4 RIP bits 63:32 outside 64-bit mode", guest32, set64(F.GUEST_RIP, 1n << 32n)],
  ["27.3.1.4 RIP canonical in 64-bit mode", null, set64(F.GUEST_RIP, NONCANON)],
  ["27.3.1.4 RFLAGS reserved bits 0", null, set64(F.GUEST_RFLAGS, 0x8002n)],
  ["27.3.1.4 RFLAGS bit 1 = 1", null, set64(F.GUEST_RFLAGS, 0n)],
  [
    "27.3.1.4 RFLAGS.VM = 0 in IA-32e mode or real mode",
    v86,
    (v) => or32(v, F.VM_ENTRY_CONTROLS, EntryCtl.IA32E_MODE_GUEST),
  ],
  [
    "27.3.1.4 RFLAGS.IF = 1 to inject an external interrupt",
    all(withIf, inject(0x20)),
    set64(F.GUEST_RFLAGS, 2n),
  ],
  // 27.3.1.5 non-register state
  ["27.3.1.5 activity state supported", null, set32(F.GUEST_ACTIVITY_STATE, 2)],
  ["27.3.1.5 HLT activity needs SS.DPL = 0", ring3, set32(F.GUEST_ACTIVITY_STATE, 1)],
  [
    "27.3.1.5 activity state active under STI/MOV-SS blocking",
    all(withIf, set32(F.GUEST_INTERRUPTIBILITY_INFO, 1)),
    set32(F.GUEST_ACTIVITY_STATE, 1),
  ],
  [
    "27.3.1.5 no event injection in wait-for-SIPI",
    all(withIf, inject(0x20)),
    set32(F.GUEST_ACTIVITY_STATE, 3),
  ],
  [
    "27.3.1.5 HLT activity takes only external interrupt, NMI, #DB, #MC, pending MTF",
    inject(0x300 | 6),
    set32(F.GUEST_ACTIVITY_STATE, 1),
  ],
  ["27.3.1.5 interruptibility reserved bits", null, set32(F.GUEST_INTERRUPTIBILITY_INFO, 0x10)],
  ["27.3.1.5 STI and MOV-SS blocking not both", withIf, set32(F.GUEST_INTERRUPTIBILITY_INFO, 3)],
  ["27.3.1.5 STI blocking needs RFLAGS.IF", null, set32(F.GUEST_INTERRUPTIBILITY_INFO, 1)],
  [
    "27.3.1.5 no STI/MOV-SS blocking when injecting an external interrupt",
    all(withIf, inject(0x20)),
    set32(F.GUEST_INTERRUPTIBILITY_INFO, 2),
  ],
  [
    "27.3.1.5 no MOV-SS blocking when injecting an NMI",
    inject(0x200 | 2),
    set32(F.GUEST_INTERRUPTIBILITY_INFO, 2),
  ],
  ["27.3.1.5 SMI blocking only in SMM", null, set32(F.GUEST_INTERRUPTIBILITY_INFO, 4)],
  [
    "27.3.1.5 no virtual-NMI blocking when injecting an NMI",
    all((v) => or32(v, F.PIN_BASED_VM_EXEC_CONTROL, Pin.NMI_EXITING | Pin.VIRTUAL_NMIS), inject(0x200 | 2)),
    set32(F.GUEST_INTERRUPTIBILITY_INFO, 8),
  ],
  ["27.3.1.5 pending debug exceptions reserved bits", null, set64(F.GUEST_PENDING_DBG_EXCEPTIONS, 0x10n)],
  [
    "27.3.1.5 pending BS = 1 when TF = 1 and BTF = 0",
    all(
      set32(F.GUEST_INTERRUPTIBILITY_INFO, 2),
      set64(F.GUEST_RFLAGS, 0x102n),
      set64(F.GUEST_PENDING_DBG_EXCEPTIONS, 0x4000n),
    ),
    set64(F.GUEST_PENDING_DBG_EXCEPTIONS, 0n),
  ],
  [
    "27.3.1.5 pending BS = 0 when TF = 0 or BTF = 1",
    set32(F.GUEST_INTERRUPTIBILITY_INFO, 2),
    set64(F.GUEST_PENDING_DBG_EXCEPTIONS, 0x4000n),
  ],
  ["27.3.1.5 VMCS link pointer aligned and in range", null, set64(F.VMCS_LINK_POINTER, 0x5008n), 4],
  ["27.3.1.5 VMCS link pointer revision id", null, set64(F.VMCS_LINK_POINTER, 0x5000n), 4],
  // 27.3.1.6 PDPTEs
  ["27.3.1.6 PDPTE reserved bits", guest32, (_v, r) => r.mem.setU64(0x5008, 0x3n), 2],
  [
    "27.3.1.6 PDPTE reserved bits",
    all(guest32, (v) => secondary(v, Proc2.ENABLE_EPT)),
    set64(F.GUEST_PDPTE2, 0x101n),
    2,
  ],
];

function expectedError(rule: string): number | null {
  if (rule.startsWith("27.2.1")) return VmError.ENTRY_INVALID_CONTROL;
  if (rule.startsWith("27.2.")) return VmError.ENTRY_INVALID_HOST_STATE;
  return null;
}

function ruleOf(r: Rig): string | null {
  const env = entryEnv(r.unit);
  const c = checkControls(env);
  if (c) return c;
  const h = checkHostState(env);
  if (h) return h;
  const g = checkGuestState(env);
  if (g) return g.rule;
  const p = checkGuestPdptes(env);
  return p !== null && !Array.isArray(p) ? p.rule : null;
}

describe("SDM 27.2-27.3 VM-entry checks, one field wrong at a time", () => {
  it("the baseline VMCS and every reshaped baseline pass all checks and enter", () => {
    const shapes = new Set<Mutate | null>(CASES.map((c) => c[1]));
    for (const shape of shapes) {
      const r = rig();
      validVmcs(r);
      shape?.(r.unit.vmcs, r);
      expect(ruleOf(r)).toBeNull();
      const out = r.unit.vmlaunch();
      expect(
        out.kind,
        `exit reason ${r.unit.vmcs.get32(F.VM_EXIT_REASON)} qual ${r.unit.vmcs.get64(F.EXIT_QUALIFICATION)}`,
      ).toBe("entered");
    }
  });

  for (const [rule, shape, wrong, qual] of CASES) {
    it(rule, () => {
      const r = rig();
      validVmcs(r);
      shape?.(r.unit.vmcs, r);
      wrong(r.unit.vmcs, r);
      expect(ruleOf(r)).toBe(rule);
      const hostRipBefore = r.unit.vmcs.get64(F.HOST_RIP);
      const out = r.unit.vmlaunch();
      const err = expectedError(rule);
      if (err !== null) {
        expect(out).toEqual({ kind: "done" });
        expect(r.cpu.rflags & 0x8d5n).toBe(0x40n);
        expect(r.unit.vmcs.get32(F.VM_INSTRUCTION_ERROR)).toBe(err);
        expect(r.unit.nonRoot).toBe(false);
      } else {
        expect(out).toEqual({ kind: "entry-failed" });
        expect(r.unit.vmcs.get32(F.VM_EXIT_REASON)).toBe((0x80000000 | 33) >>> 0);
        expect(r.unit.vmcs.get64(F.EXIT_QUALIFICATION)).toBe(BigInt(qual ?? 0));
        expect(r.cpu.rip).toBe(hostRipBefore);
        expect(r.unit.vmcs.launched).toBe(false);
      }
    });
  }
});

describe("VM-entry check cache (entry-check-cache.ts)", () => {
  it("27.2-27.3: a field written after a cached, passing entry still fails VMRESUME by its rule", () => {
    let tried = 0;
    for (const [rule, shape, wrong, qual] of CASES) {
      const r = rig();
      validVmcs(r);
      shape?.(r.unit.vmcs, r);
      expect(r.unit.vmlaunch().kind, rule).toBe("entered");
      // The test CPU's host has no PAE tables for a 32-bit host: that exit is a VMX abort.
      if (r.unit.exit({ reason: 12 }).kind !== "exited") continue;
      // The passing checks are cached now.
      wrong(r.unit.vmcs, r);
      // The state the exit stored can break an earlier rule than the case's.
      if (ruleOf(r) !== rule) continue;
      tried++;
      const out = r.unit.vmresume();
      const err = expectedError(rule);
      if (err !== null) {
        expect(out, rule).toEqual({ kind: "done" });
        expect(r.unit.vmcs.get32(F.VM_INSTRUCTION_ERROR), rule).toBe(err);
      } else {
        expect(out, rule).toEqual({ kind: "entry-failed" });
        expect(r.unit.vmcs.get32(F.VM_EXIT_REASON), rule).toBe((0x80000000 | 33) >>> 0);
        expect(r.unit.vmcs.get64(F.EXIT_QUALIFICATION), rule).toBe(BigInt(qual ?? 0));
      }
    }
    expect(tried).toBeGreaterThan(CASES.length * 0.8);
  });

  it("27.2.1.1: a VMWRITE of a bad value after a cached entry fails VMRESUME with VM-instruction error 7", () => {
    const r = rig();
    validVmcs(r);
    expect(r.unit.vmlaunch().kind).toBe("entered");
    expect(r.unit.exit({ reason: 12 }).kind).toBe("exited");
    expect(r.unit.vmresume().kind).toBe("entered");
    expect(r.unit.exit({ reason: 12 }).kind).toBe("exited");
    expect(r.unit.vmwrite(BigInt(F.CR3_TARGET_COUNT), () => 5n).kind).toBe("done");
    expect(r.unit.vmresume()).toEqual({ kind: "done" });
    expect(r.unit.vmcs.get32(F.VM_INSTRUCTION_ERROR)).toBe(VmError.ENTRY_INVALID_CONTROL);
    expect(r.unit.vmwrite(BigInt(F.CR3_TARGET_COUNT), () => 0n).kind).toBe("done");
    expect(r.unit.vmresume().kind).toBe("entered");
  });

  it("27.3.1.5: a changed VMCS link pointer target is re-read at every entry (memory is never cached)", () => {
    const r = rig();
    validVmcs(r);
    r.mem.setU32(0x9000, r.caps.config.revisionId);
    r.unit.vmcs.set64(F.VMCS_LINK_POINTER, 0x9000n);
    expect(r.unit.vmlaunch().kind).toBe("entered");
    expect(r.unit.exit({ reason: 12 }).kind).toBe("exited");
    r.mem.setU32(0x9000, 0);
    expect(r.unit.vmresume()).toEqual({ kind: "entry-failed" });
    expect(r.unit.vmcs.get64(F.EXIT_QUALIFICATION)).toBe(4n);
  });

  it("27.2-27.3: no cached check's result moves when a bit outside its declared inputs flips", () => {
    const groups = Object.values(ENTRY_CHECK_INPUTS).flat();
    const bases = CASES.map(([, shape, wrong]) => [shape, wrong] as const);
    for (const shape of new Set(CASES.map((c) => c[1]))) bases.push([shape, () => {}]);
    const fields = VMCS_FIELDS.filter((d) => !d.high);
    for (const [shape, wrong] of bases) {
      const r = rig();
      validVmcs(r);
      shape?.(r.unit.vmcs, r);
      wrong(r.unit.vmcs, r);
      const env = entryEnv(r.unit);
      const words = r.unit.vmcs.words;
      for (const { check, inputs } of groups) {
        const before = JSON.stringify(check(env));
        for (const d of fields) {
          const [lowKeep, highKeep] = inputMasks(inputs as readonly CheckInput[], d.enc);
          const w = r.unit.vmcs.wordOf(d.enc);
          const saved = [words[w]!, words[w + 1]!];
          words[w] = saved[0]! ^ ~lowKeep;
          words[w + 1] = saved[1]! ^ ~highKeep;
          expect(JSON.stringify(check(env)), `${check.name} reads ${d.name}`).toBe(before);
          words[w] = saved[0]!;
          words[w + 1] = saved[1]!;
        }
      }
    }
  });
});

/**
 * The bits of field `enc` (low half, high half) that `inputs` declares. The cache compares only
 * the low half of a 16- or 32-bit field, so that is all a check may read of one.
 */
function inputMasks(inputs: readonly CheckInput[], enc: number): [number, number] {
  const w = encWidth(enc);
  const wide = w === FieldWidth.W64 || w === FieldWidth.Natural;
  for (const i of inputs) {
    if (i === enc) return [-1, wide ? -1 : 0];
    if (typeof i !== "number" && i[0] === enc) return [i[1], 0];
  }
  return [0, 0];
}
