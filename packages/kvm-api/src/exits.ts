/**
 * What `Vcpu.run()` returns: the `kvm_run` exits userspace handles (include/uapi/linux/kvm.h
 * KVM_EXIT_*; api.rst 5 "The kvm_run structure"), as one discriminated union.
 */

export const KVM_EXIT_UNKNOWN = 0;
export const KVM_EXIT_EXCEPTION = 1;
export const KVM_EXIT_IO = 2;
export const KVM_EXIT_HYPERCALL = 3;
export const KVM_EXIT_DEBUG = 4;
export const KVM_EXIT_HLT = 5;
export const KVM_EXIT_MMIO = 6;
export const KVM_EXIT_IRQ_WINDOW_OPEN = 7;
export const KVM_EXIT_SHUTDOWN = 8;
export const KVM_EXIT_FAIL_ENTRY = 9;
export const KVM_EXIT_INTR = 10;
export const KVM_EXIT_SET_TPR = 11;
export const KVM_EXIT_TPR_ACCESS = 12;
export const KVM_EXIT_NMI = 16;
export const KVM_EXIT_INTERNAL_ERROR = 17;
export const KVM_EXIT_SYSTEM_EVENT = 24;

export const KVM_EXIT_IO_IN = 0;
export const KVM_EXIT_IO_OUT = 1;

/** KVM_EXIT_INTERNAL_ERROR suberrors. */
export const KVM_INTERNAL_ERROR_EMULATION = 1;
export const KVM_INTERNAL_ERROR_SIMUL_EX = 2;
export const KVM_INTERNAL_ERROR_DELIVERY_EV = 3;
export const KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON = 4;

/** KVM_EXIT_SYSTEM_EVENT types. */
export const KVM_SYSTEM_EVENT_SHUTDOWN = 1;
export const KVM_SYSTEM_EVENT_RESET = 2;
export const KVM_SYSTEM_EVENT_CRASH = 3;

/**
 * One exit. For `io`, `data` holds `size * count` bytes: an OUT's bytes to consume, or an IN's
 * buffer for userspace to fill before the next `run()` (as the `data_offset` area of kvm_run).
 * For `mmio`, `data` is the 8-byte buffer, `len` bytes of which count; a read is completed by
 * filling it.
 */
export type KvmExit =
  | { kind: "unknown"; reason: typeof KVM_EXIT_UNKNOWN; hardwareExitReason: number }
  | {
      kind: "io";
      reason: typeof KVM_EXIT_IO;
      direction: typeof KVM_EXIT_IO_IN | typeof KVM_EXIT_IO_OUT;
      size: 1 | 2 | 4;
      port: number;
      count: number;
      data: Uint8Array;
    }
  | { kind: "debug"; reason: typeof KVM_EXIT_DEBUG; exception: number; pc: bigint; dr6: bigint; dr7: bigint }
  | { kind: "hlt"; reason: typeof KVM_EXIT_HLT }
  | {
      kind: "mmio";
      reason: typeof KVM_EXIT_MMIO;
      physAddr: number;
      data: Uint8Array;
      len: number;
      isWrite: boolean;
    }
  | { kind: "irq-window-open"; reason: typeof KVM_EXIT_IRQ_WINDOW_OPEN }
  /** Without an in-kernel LAPIC: the guest lowered CR8 (vmx.c handle_cr), a masked interrupt may now be due. */
  | { kind: "set-tpr"; reason: typeof KVM_EXIT_SET_TPR }
  | { kind: "shutdown"; reason: typeof KVM_EXIT_SHUTDOWN }
  | {
      kind: "fail-entry";
      reason: typeof KVM_EXIT_FAIL_ENTRY;
      hardwareEntryFailureReason: bigint;
      cpu: number;
    }
  | { kind: "intr"; reason: typeof KVM_EXIT_INTR }
  | { kind: "internal-error"; reason: typeof KVM_EXIT_INTERNAL_ERROR; suberror: number; data: bigint[] }
  | { kind: "system-event"; reason: typeof KVM_EXIT_SYSTEM_EVENT; type: number; data: bigint[] };

/** The request/status fields of `struct kvm_run` around an exit. */
export interface KvmRunFields {
  /** In: ask for KVM_EXIT_IRQ_WINDOW_OPEN when an interrupt could be injected (userspace irqchip). */
  requestInterruptWindow: boolean;
  /** In: return KVM_EXIT_INTR at once (KVM_CAP_IMMEDIATE_EXIT). */
  immediateExit: boolean;
  /**
   * Out: with the in-kernel PIC always true; otherwise an interrupt can be injected now with
   * KVM_INTERRUPT (x86.c post_kvm_run_save, kvm_vcpu_ready_for_interrupt_injection).
   */
  readyForInterruptInjection: boolean;
  /** Out: RFLAGS.IF. */
  ifFlag: boolean;
  /**
   * Out: the guest's CR8 (kvm_get_cr8: the LAPIC's TPR[7:4] with an in-kernel LAPIC). In, without
   * an in-kernel LAPIC: loaded as the guest's CR8 on every `run()` ("re-sync apic's tpr"; bits
   * 63:4 set fail with EINVAL), so userspace keeps its TPR here, as QEMU does.
   */
  cr8: number;
  /** Out: IA32_APIC_BASE. */
  apicBase: number;
}

export function freshRunFields(): KvmRunFields {
  return {
    requestInterruptWindow: false,
    immediateExit: false,
    readyForInterruptInjection: false,
    ifFlag: false,
    cr8: 0,
    apicBase: 0,
  };
}
