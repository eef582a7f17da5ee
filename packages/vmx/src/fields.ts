/**
 * The VMCS field table: every field of Intel SDM Vol. 3D Appendix B ("Field Encoding in VMCS")
 * by its 32-bit encoding, written as data.
 *
 * Encoding layout (SDM Vol. 3C 25.11.2, "VMREAD, VMWRITE, and Encodings of VMCS Fields"):
 * - bit 0: access type, 0 = full, 1 = high (only for 64-bit fields: the upper 32 bits)
 * - bits 9:1: index
 * - bits 11:10: type, 0 = control, 1 = VM-exit information (read-only data), 2 = guest state,
 *   3 = host state
 * - bit 12: reserved (0)
 * - bits 14:13: width, 0 = 16-bit, 1 = 64-bit, 2 = 32-bit, 3 = natural width
 * - bits 31:15: reserved (0)
 *
 * `F` lists only the full-access encodings; `VMCS_FIELDS` adds the high-access encoding of every
 * 64-bit field.
 */

/** Bits 14:13 of an encoding. */
export const FieldWidth = { W16: 0, W64: 1, W32: 2, Natural: 3 } as const;
export type FieldWidth = (typeof FieldWidth)[keyof typeof FieldWidth];

/** Bits 11:10 of an encoding. */
export const FieldType = { Control: 0, ExitInfo: 1, Guest: 2, Host: 3 } as const;
export type FieldType = (typeof FieldType)[keyof typeof FieldType];

/**
 * Every VMCS field (full access), named after the SDM Appendix B entry (Linux spells them alike).
 * B.1 16-bit, B.2 64-bit, B.3 32-bit, B.4 natural-width; within each, control / read-only data /
 * guest-state / host-state.
 */
export const F = {
  // B.1.1 16-bit control fields
  VIRTUAL_PROCESSOR_ID: 0x0000,
  POSTED_INTR_NV: 0x0002,
  EPTP_INDEX: 0x0004,
  HLAT_PREFIX_SIZE: 0x0006,
  LAST_PID_POINTER_INDEX: 0x0008,
  // B.1.2 16-bit guest-state fields
  GUEST_ES_SELECTOR: 0x0800,
  GUEST_CS_SELECTOR: 0x0802,
  GUEST_SS_SELECTOR: 0x0804,
  GUEST_DS_SELECTOR: 0x0806,
  GUEST_FS_SELECTOR: 0x0808,
  GUEST_GS_SELECTOR: 0x080a,
  GUEST_LDTR_SELECTOR: 0x080c,
  GUEST_TR_SELECTOR: 0x080e,
  GUEST_INTR_STATUS: 0x0810,
  GUEST_PML_INDEX: 0x0812,
  GUEST_UINV: 0x0814,
  // B.1.3 16-bit host-state fields
  HOST_ES_SELECTOR: 0x0c00,
  HOST_CS_SELECTOR: 0x0c02,
  HOST_SS_SELECTOR: 0x0c04,
  HOST_DS_SELECTOR: 0x0c06,
  HOST_FS_SELECTOR: 0x0c08,
  HOST_GS_SELECTOR: 0x0c0a,
  HOST_TR_SELECTOR: 0x0c0c,
  // B.2.1 64-bit control fields
  IO_BITMAP_A: 0x2000,
  IO_BITMAP_B: 0x2002,
  MSR_BITMAP: 0x2004,
  VM_EXIT_MSR_STORE_ADDR: 0x2006,
  VM_EXIT_MSR_LOAD_ADDR: 0x2008,
  VM_ENTRY_MSR_LOAD_ADDR: 0x200a,
  EXECUTIVE_VMCS_POINTER: 0x200c,
  PML_ADDRESS: 0x200e,
  TSC_OFFSET: 0x2010,
  VIRTUAL_APIC_PAGE_ADDR: 0x2012,
  APIC_ACCESS_ADDR: 0x2014,
  POSTED_INTR_DESC_ADDR: 0x2016,
  VM_FUNCTION_CONTROL: 0x2018,
  EPT_POINTER: 0x201a,
  EOI_EXIT_BITMAP0: 0x201c,
  EOI_EXIT_BITMAP1: 0x201e,
  EOI_EXIT_BITMAP2: 0x2020,
  EOI_EXIT_BITMAP3: 0x2022,
  EPTP_LIST_ADDRESS: 0x2024,
  VMREAD_BITMAP: 0x2026,
  VMWRITE_BITMAP: 0x2028,
  VE_INFORMATION_ADDRESS: 0x202a,
  XSS_EXIT_BITMAP: 0x202c,
  ENCLS_EXITING_BITMAP: 0x202e,
  SPPT_POINTER: 0x2030,
  TSC_MULTIPLIER: 0x2032,
  TERTIARY_VM_EXEC_CONTROL: 0x2034,
  ENCLV_EXITING_BITMAP: 0x2036,
  LOW_PASID_DIR_ADDR: 0x2038,
  HIGH_PASID_DIR_ADDR: 0x203a,
  SHARED_EPT_POINTER: 0x203c,
  PCONFIG_EXITING_BITMAP: 0x203e,
  HLAT_POINTER: 0x2040,
  PID_POINTER_TABLE: 0x2042,
  SECONDARY_VM_EXIT_CONTROLS: 0x2044,
  SPEC_CTRL_MASK: 0x204a,
  SPEC_CTRL_SHADOW: 0x204c,
  // B.2.2 64-bit read-only data field
  GUEST_PHYSICAL_ADDRESS: 0x2400,
  // B.2.3 64-bit guest-state fields
  VMCS_LINK_POINTER: 0x2800,
  GUEST_IA32_DEBUGCTL: 0x2802,
  GUEST_IA32_PAT: 0x2804,
  GUEST_IA32_EFER: 0x2806,
  GUEST_IA32_PERF_GLOBAL_CTRL: 0x2808,
  GUEST_PDPTE0: 0x280a,
  GUEST_PDPTE1: 0x280c,
  GUEST_PDPTE2: 0x280e,
  GUEST_PDPTE3: 0x2810,
  GUEST_IA32_BNDCFGS: 0x2812,
  GUEST_IA32_RTIT_CTL: 0x2814,
  GUEST_IA32_LBR_CTL: 0x2816,
  GUEST_IA32_PKRS: 0x2818,
  // B.2.4 64-bit host-state fields
  HOST_IA32_PAT: 0x2c00,
  HOST_IA32_EFER: 0x2c02,
  HOST_IA32_PERF_GLOBAL_CTRL: 0x2c04,
  HOST_IA32_PKRS: 0x2c06,
  // B.3.1 32-bit control fields
  PIN_BASED_VM_EXEC_CONTROL: 0x4000,
  CPU_BASED_VM_EXEC_CONTROL: 0x4002,
  EXCEPTION_BITMAP: 0x4004,
  PAGE_FAULT_ERROR_CODE_MASK: 0x4006,
  PAGE_FAULT_ERROR_CODE_MATCH: 0x4008,
  CR3_TARGET_COUNT: 0x400a,
  VM_EXIT_CONTROLS: 0x400c,
  VM_EXIT_MSR_STORE_COUNT: 0x400e,
  VM_EXIT_MSR_LOAD_COUNT: 0x4010,
  VM_ENTRY_CONTROLS: 0x4012,
  VM_ENTRY_MSR_LOAD_COUNT: 0x4014,
  VM_ENTRY_INTR_INFO_FIELD: 0x4016,
  VM_ENTRY_EXCEPTION_ERROR_CODE: 0x4018,
  VM_ENTRY_INSTRUCTION_LEN: 0x401a,
  TPR_THRESHOLD: 0x401c,
  SECONDARY_VM_EXEC_CONTROL: 0x401e,
  PLE_GAP: 0x4020,
  PLE_WINDOW: 0x4022,
  NOTIFY_WINDOW: 0x4024,
  // B.3.2 32-bit read-only data fields
  VM_INSTRUCTION_ERROR: 0x4400,
  VM_EXIT_REASON: 0x4402,
  VM_EXIT_INTR_INFO: 0x4404,
  VM_EXIT_INTR_ERROR_CODE: 0x4406,
  IDT_VECTORING_INFO_FIELD: 0x4408,
  IDT_VECTORING_ERROR_CODE: 0x440a,
  VM_EXIT_INSTRUCTION_LEN: 0x440c,
  VMX_INSTRUCTION_INFO: 0x440e,
  // B.3.3 32-bit guest-state fields
  GUEST_ES_LIMIT: 0x4800,
  GUEST_CS_LIMIT: 0x4802,
  GUEST_SS_LIMIT: 0x4804,
  GUEST_DS_LIMIT: 0x4806,
  GUEST_FS_LIMIT: 0x4808,
  GUEST_GS_LIMIT: 0x480a,
  GUEST_LDTR_LIMIT: 0x480c,
  GUEST_TR_LIMIT: 0x480e,
  GUEST_GDTR_LIMIT: 0x4810,
  GUEST_IDTR_LIMIT: 0x4812,
  GUEST_ES_AR_BYTES: 0x4814,
  GUEST_CS_AR_BYTES: 0x4816,
  GUEST_SS_AR_BYTES: 0x4818,
  GUEST_DS_AR_BYTES: 0x481a,
  GUEST_FS_AR_BYTES: 0x481c,
  GUEST_GS_AR_BYTES: 0x481e,
  GUEST_LDTR_AR_BYTES: 0x4820,
  GUEST_TR_AR_BYTES: 0x4822,
  GUEST_INTERRUPTIBILITY_INFO: 0x4824,
  GUEST_ACTIVITY_STATE: 0x4826,
  GUEST_SMBASE: 0x4828,
  GUEST_SYSENTER_CS: 0x482a,
  VMX_PREEMPTION_TIMER_VALUE: 0x482e,
  // B.3.4 32-bit host-state field
  HOST_IA32_SYSENTER_CS: 0x4c00,
  // B.4.1 natural-width control fields
  CR0_GUEST_HOST_MASK: 0x6000,
  CR4_GUEST_HOST_MASK: 0x6002,
  CR0_READ_SHADOW: 0x6004,
  CR4_READ_SHADOW: 0x6006,
  CR3_TARGET_VALUE0: 0x6008,
  CR3_TARGET_VALUE1: 0x600a,
  CR3_TARGET_VALUE2: 0x600c,
  CR3_TARGET_VALUE3: 0x600e,
  // B.4.2 natural-width read-only data fields
  EXIT_QUALIFICATION: 0x6400,
  IO_RCX: 0x6402,
  IO_RSI: 0x6404,
  IO_RDI: 0x6406,
  IO_RIP: 0x6408,
  GUEST_LINEAR_ADDRESS: 0x640a,
  // B.4.3 natural-width guest-state fields
  GUEST_CR0: 0x6800,
  GUEST_CR3: 0x6802,
  GUEST_CR4: 0x6804,
  GUEST_ES_BASE: 0x6806,
  GUEST_CS_BASE: 0x6808,
  GUEST_SS_BASE: 0x680a,
  GUEST_DS_BASE: 0x680c,
  GUEST_FS_BASE: 0x680e,
  GUEST_GS_BASE: 0x6810,
  GUEST_LDTR_BASE: 0x6812,
  GUEST_TR_BASE: 0x6814,
  GUEST_GDTR_BASE: 0x6816,
  GUEST_IDTR_BASE: 0x6818,
  GUEST_DR7: 0x681a,
  GUEST_RSP: 0x681c,
  GUEST_RIP: 0x681e,
  GUEST_RFLAGS: 0x6820,
  GUEST_PENDING_DBG_EXCEPTIONS: 0x6822,
  GUEST_SYSENTER_ESP: 0x6824,
  GUEST_SYSENTER_EIP: 0x6826,
  GUEST_S_CET: 0x6828,
  GUEST_SSP: 0x682a,
  GUEST_INTR_SSP_TABLE: 0x682c,
  // B.4.4 natural-width host-state fields
  HOST_CR0: 0x6c00,
  HOST_CR3: 0x6c02,
  HOST_CR4: 0x6c04,
  HOST_FS_BASE: 0x6c06,
  HOST_GS_BASE: 0x6c08,
  HOST_TR_BASE: 0x6c0a,
  HOST_GDTR_BASE: 0x6c0c,
  HOST_IDTR_BASE: 0x6c0e,
  HOST_IA32_SYSENTER_ESP: 0x6c10,
  HOST_IA32_SYSENTER_EIP: 0x6c12,
  HOST_RSP: 0x6c14,
  HOST_RIP: 0x6c16,
  HOST_S_CET: 0x6c18,
  HOST_SSP: 0x6c1a,
  HOST_INTR_SSP_TABLE: 0x6c1c,
} as const;

export type FieldName = keyof typeof F;

/**
 * The processor feature a field belongs to: a field exists in our VMCS ("is supported", SDM
 * 25.11.2) only when the feature is implemented (see caps.ts `VmxFeatures`). Fields not listed in
 * `FIELD_FEATURE` are part of basic VMX and always exist.
 */
export type FieldFeature =
  | "base"
  | "vpid"
  | "postedInterrupts"
  | "eptpSwitching"
  | "hlat"
  | "ipiVirt"
  | "virtualInterruptDelivery"
  | "pml"
  | "uintr"
  | "smm"
  | "ept"
  | "vmfunc"
  | "vmcsShadowing"
  | "ve"
  | "xsaves"
  | "sgx"
  | "spp"
  | "tscScaling"
  | "tertiary"
  | "pasid"
  | "tdx"
  | "pconfig"
  | "secondaryExit"
  | "specCtrl"
  | "perfGlobalCtrl"
  | "mpx"
  | "pt"
  | "lbr"
  | "pks"
  | "tprShadow"
  | "apicAccess"
  | "pauseLoop"
  | "notify"
  | "preemptionTimer"
  | "cet"
  | "pdpte";

/** Features of fields outside basic VMX (SDM Appendix B footnotes name the control each needs). */
export const FIELD_FEATURE: Partial<Record<FieldName, FieldFeature>> = {
  VIRTUAL_PROCESSOR_ID: "vpid",
  POSTED_INTR_NV: "postedInterrupts",
  EPTP_INDEX: "ve",
  HLAT_PREFIX_SIZE: "hlat",
  LAST_PID_POINTER_INDEX: "ipiVirt",
  GUEST_INTR_STATUS: "virtualInterruptDelivery",
  GUEST_PML_INDEX: "pml",
  GUEST_UINV: "uintr",
  EXECUTIVE_VMCS_POINTER: "smm",
  PML_ADDRESS: "pml",
  VIRTUAL_APIC_PAGE_ADDR: "tprShadow",
  APIC_ACCESS_ADDR: "apicAccess",
  POSTED_INTR_DESC_ADDR: "postedInterrupts",
  VM_FUNCTION_CONTROL: "vmfunc",
  EPT_POINTER: "ept",
  EOI_EXIT_BITMAP0: "virtualInterruptDelivery",
  EOI_EXIT_BITMAP1: "virtualInterruptDelivery",
  EOI_EXIT_BITMAP2: "virtualInterruptDelivery",
  EOI_EXIT_BITMAP3: "virtualInterruptDelivery",
  EPTP_LIST_ADDRESS: "eptpSwitching",
  VMREAD_BITMAP: "vmcsShadowing",
  VMWRITE_BITMAP: "vmcsShadowing",
  VE_INFORMATION_ADDRESS: "ve",
  XSS_EXIT_BITMAP: "xsaves",
  ENCLS_EXITING_BITMAP: "sgx",
  SPPT_POINTER: "spp",
  TSC_MULTIPLIER: "tscScaling",
  TERTIARY_VM_EXEC_CONTROL: "tertiary",
  ENCLV_EXITING_BITMAP: "sgx",
  LOW_PASID_DIR_ADDR: "pasid",
  HIGH_PASID_DIR_ADDR: "pasid",
  SHARED_EPT_POINTER: "tdx",
  PCONFIG_EXITING_BITMAP: "pconfig",
  HLAT_POINTER: "hlat",
  PID_POINTER_TABLE: "ipiVirt",
  SECONDARY_VM_EXIT_CONTROLS: "secondaryExit",
  SPEC_CTRL_MASK: "specCtrl",
  SPEC_CTRL_SHADOW: "specCtrl",
  GUEST_PHYSICAL_ADDRESS: "ept",
  GUEST_IA32_PERF_GLOBAL_CTRL: "perfGlobalCtrl",
  GUEST_PDPTE0: "ept",
  GUEST_PDPTE1: "ept",
  GUEST_PDPTE2: "ept",
  GUEST_PDPTE3: "ept",
  GUEST_IA32_BNDCFGS: "mpx",
  GUEST_IA32_RTIT_CTL: "pt",
  GUEST_IA32_LBR_CTL: "lbr",
  GUEST_IA32_PKRS: "pks",
  HOST_IA32_PERF_GLOBAL_CTRL: "perfGlobalCtrl",
  HOST_IA32_PKRS: "pks",
  TPR_THRESHOLD: "tprShadow",
  PLE_GAP: "pauseLoop",
  PLE_WINDOW: "pauseLoop",
  NOTIFY_WINDOW: "notify",
  VMX_PREEMPTION_TIMER_VALUE: "preemptionTimer",
  GUEST_SMBASE: "smm",
  GUEST_S_CET: "cet",
  GUEST_SSP: "cet",
  GUEST_INTR_SSP_TABLE: "cet",
  HOST_S_CET: "cet",
  HOST_SSP: "cet",
  HOST_INTR_SSP_TABLE: "cet",
};

/** One row of the table: an encoding a VMREAD/VMWRITE may name. */
export interface VmcsFieldDef {
  /** The SDM name; high-access entries carry a `_HIGH` suffix. */
  readonly name: string;
  /** The 32-bit encoding. */
  readonly enc: number;
  readonly width: FieldWidth;
  readonly type: FieldType;
  /** Bits 9:1 of the encoding. */
  readonly index: number;
  /** True for the high-access encoding of a 64-bit field (bit 0 set). */
  readonly high: boolean;
  /** Read-only VM-exit information (type 1): VMWRITE fails unless IA32_VMX_MISC bit 29 is set. */
  readonly readOnly: boolean;
  readonly feature: FieldFeature;
}

/** Width (bits 14:13) of an encoding. */
export function encWidth(enc: number): FieldWidth {
  return ((enc >>> 13) & 3) as FieldWidth;
}
/** Type (bits 11:10) of an encoding. */
export function encType(enc: number): FieldType {
  return ((enc >>> 10) & 3) as FieldType;
}
/** Index (bits 9:1) of an encoding. */
export function encIndex(enc: number): number {
  return (enc >>> 1) & 0x1ff;
}
/** Access type (bit 0): 1 = high half of a 64-bit field. */
export function encHigh(enc: number): boolean {
  return (enc & 1) === 1;
}

function buildTable(): VmcsFieldDef[] {
  const rows: VmcsFieldDef[] = [];
  for (const name of Object.keys(F) as FieldName[]) {
    const enc = F[name];
    const width = encWidth(enc);
    const type = encType(enc);
    const feature = FIELD_FEATURE[name] ?? "base";
    const row = { width, type, index: encIndex(enc), readOnly: type === FieldType.ExitInfo, feature };
    rows.push({ name, enc, high: false, ...row });
    if (width === FieldWidth.W64) rows.push({ name: `${name}_HIGH`, enc: enc | 1, high: true, ...row });
  }
  return rows;
}

/** Every encoding of Appendix B: full-access entries plus the high-access entry of each 64-bit field. */
export const VMCS_FIELDS: readonly VmcsFieldDef[] = buildTable();

const byEnc = new Map<number, VmcsFieldDef>(VMCS_FIELDS.map((d) => [d.enc, d]));

/** The table row for an encoding, or undefined when Appendix B has no such field. */
export function fieldDef(enc: number): VmcsFieldDef | undefined {
  return byEnc.get(enc);
}

/** Index of the eight segment registers in VMCS order (ES, CS, SS, DS, FS, GS, LDTR, TR). */
export const Seg = { ES: 0, CS: 1, SS: 2, DS: 3, FS: 4, GS: 5, LDTR: 6, TR: 7 } as const;
export type Seg = (typeof Seg)[keyof typeof Seg];

/** Encodings of one guest segment register's four fields. */
export interface GuestSegFields {
  readonly sel: number;
  readonly limit: number;
  readonly ar: number;
  readonly base: number;
}

const SEG_FIELDS: readonly GuestSegFields[] = [0, 1, 2, 3, 4, 5, 6, 7].map((s) => ({
  sel: F.GUEST_ES_SELECTOR + 2 * s,
  limit: F.GUEST_ES_LIMIT + 2 * s,
  ar: F.GUEST_ES_AR_BYTES + 2 * s,
  base: F.GUEST_ES_BASE + 2 * s,
}));

/** Guest selector/limit/AR/base encodings of segment `s` (the SDM numbers them consecutively). */
export function guestSegFields(s: Seg): GuestSegFields {
  return SEG_FIELDS[s]!;
}
