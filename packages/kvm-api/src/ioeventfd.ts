/**
 * ioeventfd-style listeners (KVM_IOEVENTFD, api.rst 4.59; virt/kvm/eventfd.c): a guest write to a
 * registered port or MMIO address, optionally with a matching value, calls `notify` and completes
 * the write in the kernel, without a KVM_EXIT_IO/MMIO round trip (virtio queue notifications).
 */
import { fail } from "./errors.js";

export const KVM_IOEVENTFD_FLAG_DATAMATCH = 1 << 0;
export const KVM_IOEVENTFD_FLAG_PIO = 1 << 1;
export const KVM_IOEVENTFD_FLAG_DEASSIGN = 1 << 2;

export interface IoeventfdSpec {
  addr: number;
  /** 0 (any width; address match only), 1, 2, 4 or 8 bytes. */
  len: number;
  /** Port I/O instead of MMIO. */
  pio: boolean;
  /** Only writes of this value trigger (KVM_IOEVENTFD_FLAG_DATAMATCH). */
  datamatch?: bigint;
  notify: () => void;
}

interface Entry {
  addr: number;
  len: number;
  pio: boolean;
  wildcard: boolean;
  lo: number;
  hi: number;
  notify: () => void;
}

export class IoeventfdTable {
  private readonly entries: Entry[] = [];
  /** Count of entries per bus, so the hot path skips the search when there are none. */
  private pioCount = 0;
  private mmioCount = 0;

  /** KVM_IOEVENTFD (assign). */
  add(spec: IoeventfdSpec): void {
    const e = this.toEntry(spec, "KVM_IOEVENTFD");
    // eventfd.c ioeventfd_check_collision(): same bus, address, length and data(match) is EEXIST.
    if (this.entries.some((o) => this.same(o, e))) fail("EEXIST", "KVM_IOEVENTFD", "Collision");
    this.entries.push(e);
    if (e.pio) this.pioCount++;
    else this.mmioCount++;
  }

  /** KVM_IOEVENTFD with KVM_IOEVENTFD_FLAG_DEASSIGN: the registration must exist (ENOENT). */
  remove(spec: IoeventfdSpec): void {
    const e = this.toEntry(spec, "KVM_IOEVENTFD");
    const i = this.entries.findIndex((o) => this.same(o, e) && o.notify === spec.notify);
    if (i < 0) fail("ENOENT", "KVM_IOEVENTFD", "NotAssigned");
    this.entries.splice(i, 1);
    if (e.pio) this.pioCount--;
    else this.mmioCount--;
  }

  /** A guest write of `len` bytes (value as two halves): true if a listener took it. */
  write(pio: boolean, addr: number, len: number, lo: number, hi: number): boolean {
    if ((pio ? this.pioCount : this.mmioCount) === 0) return false;
    for (const e of this.entries) {
      if (e.pio !== pio || e.addr !== addr) continue;
      // ioeventfd_in_range(): length 0 matches any access; a wildcard matches any value.
      if (e.len !== 0 && e.len !== len) continue;
      if (!e.wildcard && (e.lo !== lo >>> 0 || e.hi !== hi >>> 0)) continue;
      e.notify();
      return true;
    }
    return false;
  }

  private same(a: Entry, b: Entry): boolean {
    return (
      a.pio === b.pio &&
      a.addr === b.addr &&
      a.len === b.len &&
      a.wildcard === b.wildcard &&
      (a.wildcard || (a.lo === b.lo && a.hi === b.hi))
    );
  }

  private toEntry(spec: IoeventfdSpec, step: string): Entry {
    if (![0, 1, 2, 4, 8].includes(spec.len)) fail("EINVAL", step, "BadLength");
    if (!Number.isSafeInteger(spec.addr) || spec.addr < 0 || (spec.pio && spec.addr + spec.len > 0x10000)) {
      fail("EINVAL", step, "BadAddress");
    }
    if (spec.len === 0 && spec.datamatch !== undefined) fail("EINVAL", step, "DatamatchWithoutLength");
    const dm = spec.datamatch ?? 0n;
    if (dm < 0n || dm >> BigInt(Math.max(spec.len, 1) * 8) !== 0n) fail("EINVAL", step, "DatamatchTooWide");
    return {
      addr: spec.addr,
      len: spec.len,
      pio: spec.pio,
      wildcard: spec.datamatch === undefined,
      lo: Number(dm & 0xffffffffn),
      hi: Number(dm >> 32n),
      notify: spec.notify,
    };
  }
}
