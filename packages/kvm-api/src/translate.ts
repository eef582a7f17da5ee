/**
 * KVM_TRANSLATE (api.rst 4.37; x86.c kvm_arch_vcpu_ioctl_translate): a guest-linear address through
 * the vCPU's current paging (CR0/CR3/CR4/EFER of KVM_GET_SREGS) to a guest-physical address, with
 * the `@tskvm/mmu-ept` guest walker over guest memory read-only: the walk sets no accessed or dirty
 * flag and faults nothing (page-table reads outside RAM read all-ones, as unbacked memory does).
 *
 * Deviation: KVM walks for a supervisor read and always reports `writeable = 1, usermode = 0`; here
 * `writeable` and `usermode` are the walk's combined R/W and U/S rights (SDM Vol. 3A 4.6: a
 * supervisor write honours CR0.WP). A failed walk gives `valid = 0` and KVM's INVALID_GPA (all ones).
 */
import { GuestWalker, newTranslateResult, type PhysMem } from "@tskvm/mmu-ept";
import { fail } from "./errors.js";
import type { KvmSregs } from "./vcpu-state.js";

/** `struct kvm_translation`'s answer. */
export interface KvmTranslation {
  linearAddress: bigint;
  physicalAddress: bigint;
  valid: boolean;
  writeable: boolean;
  usermode: boolean;
}

/** What the walk reads guest memory through (GuestPhysMemory). */
export interface TranslateMemory {
  read(gpa: number, dst: Uint8Array): boolean;
}

/** INVALID_GPA. */
const INVALID_GPA = 0xffffffffffffffffn;

/** Guest memory as the walker reads it; writes (A/D updates) are dropped. */
class ReadOnlyPhys implements PhysMem {
  private readonly buf = new Uint8Array(4);
  private readonly dv = new DataView(this.buf.buffer);
  constructor(private readonly mem: TranslateMemory) {}
  read32(pa: number): number {
    return this.mem.read(pa, this.buf) ? this.dv.getInt32(0, true) : -1;
  }
  write32(): void {}
}

/** Translates `linear` with the paging registers of `s`; `maxPhyAddr` bounds the entries. */
export function translate(
  s: KvmSregs,
  mem: TranslateMemory,
  linear: bigint,
  maxPhyAddr: number,
): KvmTranslation {
  if (typeof linear !== "bigint" || linear < 0n || linear >> 64n)
    fail("EINVAL", "KVM_TRANSLATE", "BadAddress");
  const lo32 = (x: bigint) => Number(x & 0xffffffffn) | 0;
  const cr0 = lo32(s.cr0);
  if ((cr0 & 0x80000000) === 0) {
    // Paging off: linear = physical (nonpaging_gva_to_gpa), no rights to restrict.
    return { linearAddress: linear, physicalAddress: linear, valid: true, writeable: true, usermode: true };
  }
  const regs = { cr0, cr3Lo: lo32(s.cr3), cr3Hi: lo32(s.cr3 >> 32n), cr4: lo32(s.cr4), efer: lo32(s.efer) };
  const w = new GuestWalker(regs, new ReadOnlyPhys(mem), { maxPhyAddr });
  const out = newTranslateResult();
  if (!w.translate(lo32(linear), lo32(linear >> 32n), 0, out)) {
    return {
      linearAddress: linear,
      physicalAddress: INVALID_GPA,
      valid: false,
      writeable: false,
      usermode: false,
    };
  }
  return {
    linearAddress: linear,
    physicalAddress: BigInt(out.paddr),
    valid: true,
    // A supervisor write is allowed by R/W, or by CR0.WP = 0 (SDM Vol. 3A 4.6.1).
    writeable: out.writable || (cr0 & 0x10000) === 0,
    usermode: out.user,
  };
}
