/**
 * Named bits of the VMX control fields, the basic exit reasons and the VM-instruction error
 * numbers (SDM Vol. 3C 25.6-25.8, Appendix C "VMX Basic Exit Reasons", 31.4 "VM Instruction
 * Error Numbers").
 */

/** Pin-based VM-execution controls (SDM 25.6.1, Table 25-5). */
export const Pin = {
  EXT_INTR_EXITING: 1 << 0,
  NMI_EXITING: 1 << 3,
  VIRTUAL_NMIS: 1 << 5,
  PREEMPTION_TIMER: 1 << 6,
  POSTED_INTERRUPTS: 1 << 7,
} as const;

/** Primary processor-based VM-execution controls (SDM 25.6.2, Table 25-6). */
export const Proc = {
  INTR_WINDOW_EXITING: 1 << 2,
  USE_TSC_OFFSETTING: 1 << 3,
  HLT_EXITING: 1 << 7,
  INVLPG_EXITING: 1 << 9,
  MWAIT_EXITING: 1 << 10,
  RDPMC_EXITING: 1 << 11,
  RDTSC_EXITING: 1 << 12,
  CR3_LOAD_EXITING: 1 << 15,
  CR3_STORE_EXITING: 1 << 16,
  ACTIVATE_TERTIARY: 1 << 17,
  CR8_LOAD_EXITING: 1 << 19,
  CR8_STORE_EXITING: 1 << 20,
  USE_TPR_SHADOW: 1 << 21,
  NMI_WINDOW_EXITING: 1 << 22,
  MOV_DR_EXITING: 1 << 23,
  UNCOND_IO_EXITING: 1 << 24,
  USE_IO_BITMAPS: 1 << 25,
  MONITOR_TRAP_FLAG: 1 << 27,
  USE_MSR_BITMAPS: 1 << 28,
  MONITOR_EXITING: 1 << 29,
  PAUSE_EXITING: 1 << 30,
  ACTIVATE_SECONDARY: 1 << 31,
} as const;

/** Secondary processor-based VM-execution controls (SDM 25.6.2, Table 25-7). */
export const Proc2 = {
  VIRTUALIZE_APIC_ACCESSES: 1 << 0,
  ENABLE_EPT: 1 << 1,
  DESC_TABLE_EXITING: 1 << 2,
  ENABLE_RDTSCP: 1 << 3,
  VIRTUALIZE_X2APIC: 1 << 4,
  ENABLE_VPID: 1 << 5,
  WBINVD_EXITING: 1 << 6,
  UNRESTRICTED_GUEST: 1 << 7,
  APIC_REGISTER_VIRT: 1 << 8,
  VIRTUAL_INTR_DELIVERY: 1 << 9,
  PAUSE_LOOP_EXITING: 1 << 10,
  RDRAND_EXITING: 1 << 11,
  ENABLE_INVPCID: 1 << 12,
  ENABLE_VMFUNC: 1 << 13,
  VMCS_SHADOWING: 1 << 14,
  ENCLS_EXITING: 1 << 15,
  RDSEED_EXITING: 1 << 16,
  ENABLE_PML: 1 << 17,
  EPT_VIOLATION_VE: 1 << 18,
  CONCEAL_VMX_FROM_PT: 1 << 19,
  ENABLE_XSAVES: 1 << 20,
  MODE_BASED_EPT_EXEC: 1 << 22,
  SPP: 1 << 23,
  PT_USES_GPA: 1 << 24,
  TSC_SCALING: 1 << 25,
  ENABLE_USER_WAIT_PAUSE: 1 << 26,
  ENABLE_PCONFIG: 1 << 27,
  ENCLV_EXITING: 1 << 28,
} as const;

/** Primary VM-exit controls (SDM 25.7.1, Table 25-13). */
export const ExitCtl = {
  SAVE_DEBUG_CONTROLS: 1 << 2,
  HOST_ADDR_SPACE_SIZE: 1 << 9,
  LOAD_PERF_GLOBAL_CTRL: 1 << 12,
  ACK_INTR_ON_EXIT: 1 << 15,
  SAVE_PAT: 1 << 18,
  LOAD_PAT: 1 << 19,
  SAVE_EFER: 1 << 20,
  LOAD_EFER: 1 << 21,
  SAVE_PREEMPTION_TIMER: 1 << 22,
  CLEAR_BNDCFGS: 1 << 23,
  CONCEAL_VMX_FROM_PT: 1 << 24,
  LOAD_CET_STATE: 1 << 28,
  LOAD_PKRS: 1 << 29,
  ACTIVATE_SECONDARY: 1 << 31,
} as const;

/** VM-entry controls (SDM 25.8.1, Table 25-15). */
export const EntryCtl = {
  LOAD_DEBUG_CONTROLS: 1 << 2,
  IA32E_MODE_GUEST: 1 << 9,
  ENTRY_TO_SMM: 1 << 10,
  DEACTIVATE_DUAL_MONITOR: 1 << 11,
  LOAD_PERF_GLOBAL_CTRL: 1 << 13,
  LOAD_PAT: 1 << 14,
  LOAD_EFER: 1 << 15,
  LOAD_BNDCFGS: 1 << 16,
  CONCEAL_VMX_FROM_PT: 1 << 17,
  LOAD_CET_STATE: 1 << 20,
  LOAD_PKRS: 1 << 22,
} as const;

/** Basic exit reasons (SDM Vol. 3D Appendix C, Table C-1). */
export const ExitReason = {
  EXCEPTION_NMI: 0,
  EXTERNAL_INTERRUPT: 1,
  TRIPLE_FAULT: 2,
  INIT_SIGNAL: 3,
  SIPI: 4,
  IO_SMI: 5,
  OTHER_SMI: 6,
  INTERRUPT_WINDOW: 7,
  NMI_WINDOW: 8,
  TASK_SWITCH: 9,
  CPUID: 10,
  GETSEC: 11,
  HLT: 12,
  INVD: 13,
  INVLPG: 14,
  RDPMC: 15,
  RDTSC: 16,
  RSM: 17,
  VMCALL: 18,
  VMCLEAR: 19,
  VMLAUNCH: 20,
  VMPTRLD: 21,
  VMPTRST: 22,
  VMREAD: 23,
  VMRESUME: 24,
  VMWRITE: 25,
  VMXOFF: 26,
  VMXON: 27,
  CR_ACCESS: 28,
  DR_ACCESS: 29,
  IO_INSTRUCTION: 30,
  RDMSR: 31,
  WRMSR: 32,
  ENTRY_FAIL_GUEST_STATE: 33,
  ENTRY_FAIL_MSR_LOADING: 34,
  MWAIT: 36,
  MONITOR_TRAP_FLAG: 37,
  MONITOR: 39,
  PAUSE: 40,
  ENTRY_FAIL_MACHINE_CHECK: 41,
  TPR_BELOW_THRESHOLD: 43,
  APIC_ACCESS: 44,
  VIRTUALIZED_EOI: 45,
  GDTR_IDTR_ACCESS: 46,
  LDTR_TR_ACCESS: 47,
  EPT_VIOLATION: 48,
  EPT_MISCONFIG: 49,
  INVEPT: 50,
  RDTSCP: 51,
  PREEMPTION_TIMER: 52,
  INVVPID: 53,
  WBINVD: 54,
  XSETBV: 55,
  APIC_WRITE: 56,
  RDRAND: 57,
  INVPCID: 58,
  VMFUNC: 59,
  ENCLS: 60,
  RDSEED: 61,
  PML_FULL: 62,
  XSAVES: 63,
  XRSTORS: 64,
  SPP_EVENT: 66,
  UMWAIT: 67,
  TPAUSE: 68,
  LOADIWKEY: 69,
} as const;

/** Bit 31 of the exit-reason field: VM-entry failure (SDM 25.9.1, Table 25-18). */
export const EXIT_REASON_ENTRY_FAILURE = 0x80000000;

/** VM-instruction error numbers (SDM Vol. 3C 31.4, Table 31-1). */
export const VmError = {
  VMCALL_IN_ROOT: 1,
  VMCLEAR_INVALID_ADDRESS: 2,
  VMCLEAR_VMXON_POINTER: 3,
  VMLAUNCH_NONCLEAR: 4,
  VMRESUME_NONLAUNCHED: 5,
  VMRESUME_AFTER_VMXOFF: 6,
  ENTRY_INVALID_CONTROL: 7,
  ENTRY_INVALID_HOST_STATE: 8,
  VMPTRLD_INVALID_ADDRESS: 9,
  VMPTRLD_VMXON_POINTER: 10,
  VMPTRLD_BAD_REVISION: 11,
  UNSUPPORTED_COMPONENT: 12,
  VMWRITE_READ_ONLY: 13,
  VMXON_IN_ROOT: 15,
  ENTRY_INVALID_EXECUTIVE_VMCS: 16,
  ENTRY_NONLAUNCHED_EXECUTIVE_VMCS: 17,
  ENTRY_EXECUTIVE_NOT_VMXON: 18,
  VMCALL_NONCLEAR: 19,
  VMCALL_INVALID_EXIT_CONTROL: 20,
  VMCALL_BAD_MSEG_REVISION: 22,
  VMXOFF_DUAL_MONITOR: 23,
  VMCALL_BAD_SMM_MONITOR: 24,
  ENTRY_BAD_EXECUTIVE_CONTROLS: 25,
  ENTRY_MOV_SS_BLOCKING: 26,
  INVALID_INVEPT_INVVPID: 28,
} as const;

/** VM-entry interruption-information / exit interruption-information types (SDM 25.8.3). */
export const IntrType = {
  EXTERNAL: 0,
  NMI: 2,
  HW_EXCEPTION: 3,
  SW_INTERRUPT: 4,
  PRIV_SW_EXCEPTION: 5,
  SW_EXCEPTION: 6,
  OTHER: 7,
} as const;

/** Bit 31 of an interruption-information field. */
export const INTR_INFO_VALID = 0x80000000;
/** Bit 11: deliver error code. */
export const INTR_INFO_DELIVER_CODE = 1 << 11;
/** Bit 12 of exit interruption info: NMI unblocking due to IRET. */
export const INTR_INFO_NMI_UNBLOCK = 1 << 12;

/** Guest interruptibility-state bits (SDM 25.4.2, Table 25-3). */
export const Interruptibility = {
  STI: 1 << 0,
  MOV_SS: 1 << 1,
  SMI: 1 << 2,
  NMI: 1 << 3,
  ENCLAVE: 1 << 4,
} as const;

/** Guest activity states (SDM 25.4.2). */
export const Activity = { ACTIVE: 0, HLT: 1, SHUTDOWN: 2, WAIT_FOR_SIPI: 3 } as const;
