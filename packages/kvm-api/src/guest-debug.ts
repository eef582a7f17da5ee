/**
 * KVM_SET_GUEST_DEBUG (api.rst 4.59 "KVM_SET_GUEST_DEBUG"; x86.c kvm_arch_vcpu_ioctl_set_guest_debug):
 * the control flags and `struct kvm_guest_debug_arch` (DR0-3 in debugreg[0..3], DR7 in debugreg[7]),
 * validated as KVM validates them. The backend applies them (run/debug.ts).
 */
import { fail } from "./errors.js";

/** Guest debugging on; without it every other flag is ignored (control reads back as 0). */
export const KVM_GUESTDBG_ENABLE = 0x1;
/** KVM_EXIT_DEBUG (exception 1, DR6.BS) after each guest instruction. */
export const KVM_GUESTDBG_SINGLESTEP = 0x2;
/** INT3 (#BP) exits with KVM_EXIT_DEBUG (exception 3) instead of reaching the guest. */
export const KVM_GUESTDBG_USE_SW_BP = 0x10000;
/** debugreg[0..3] and debugreg[7] replace the guest's DR0-3/DR7 while it runs. */
export const KVM_GUESTDBG_USE_HW_BP = 0x20000;
/** Queue a #DB (#BP) for the guest on the next KVM_RUN. */
export const KVM_GUESTDBG_INJECT_DB = 0x40000;
export const KVM_GUESTDBG_INJECT_BP = 0x80000;
/** No interrupts are injected while single-stepping. */
export const KVM_GUESTDBG_BLOCKIRQ = 0x100000;
/** KVM_GUESTDBG_VALID_MASK for x86 (arch/x86/include/asm/kvm_host.h). */
export const KVM_GUESTDBG_VALID_MASK =
  KVM_GUESTDBG_ENABLE |
  KVM_GUESTDBG_SINGLESTEP |
  KVM_GUESTDBG_USE_SW_BP |
  KVM_GUESTDBG_USE_HW_BP |
  KVM_GUESTDBG_INJECT_DB |
  KVM_GUESTDBG_INJECT_BP |
  KVM_GUESTDBG_BLOCKIRQ;

/** DR6 bits that read as 1 (KVM's DR6_ACTIVE_LOW / DR6_FIXED_1, SDM Vol. 3 18.2.3). */
export const DR6_ACTIVE_LOW = 0xffff0ff0n;
/** DR6.BS: single step. */
export const DR6_BS = 0x4000n;
/** DR6.BD: a general-detect #DB (SDM Vol. 3 18.2.3). */
export const DR6_BD = 0x2000n;

/** `struct kvm_guest_debug`: `control` and `arch.debugreg[8]`. */
export interface KvmGuestDebug {
  control: number;
  debugreg: bigint[];
}

export function emptyGuestDebug(): KvmGuestDebug {
  return { control: 0, debugreg: [0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n] };
}

/**
 * The KVM_SET_GUEST_DEBUG checks: unknown control bits are EINVAL (KVM_GUESTDBG_VALID_MASK), eight
 * 64-bit debug registers. Deviation: KVM takes any DR7 and fails the next VM entry when its bits
 * 63:32 are set (SDM 27.3.1.1); that value is refused here with EINVAL instead.
 */
export function checkGuestDebug(d: KvmGuestDebug): KvmGuestDebug {
  const step = "KVM_SET_GUEST_DEBUG";
  if (!Number.isInteger(d.control) || d.control < 0 || d.control > 0xffffffff)
    fail("EINVAL", step, "BadControl");
  if (d.control & ~KVM_GUESTDBG_VALID_MASK) fail("EINVAL", step, "UnknownControlBits");
  if (!Array.isArray(d.debugreg) || d.debugreg.length !== 8) fail("EINVAL", step, "BadDebugregCount");
  for (const r of d.debugreg)
    if (typeof r !== "bigint" || r < 0n || r >> 64n) fail("EINVAL", step, "BadDebugreg");
  if (d.control & KVM_GUESTDBG_USE_HW_BP && d.debugreg[7]! >> 32n) fail("EINVAL", step, "Dr7Reserved");
  // api.rst: without ENABLE the rest is ignored; only the inject requests act on their own.
  const control = d.control & KVM_GUESTDBG_ENABLE ? d.control : 0;
  return { control, debugreg: d.debugreg.slice() };
}
