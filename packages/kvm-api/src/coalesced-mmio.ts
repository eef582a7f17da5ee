/**
 * Coalesced MMIO and PIO (KVM_REGISTER_COALESCED_MMIO / KVM_UNREGISTER_COALESCED_MMIO, api.rst
 * 4.65-4.66; virt/kvm/coalesced_mmio.c): guest writes into a registered zone complete in the kernel
 * and are queued in a ring that userspace drains at its next exit, instead of one KVM_EXIT_MMIO or
 * KVM_EXIT_IO each. Meant for writes whose effect may wait (framebuffers, index registers); reads
 * of a zone still exit, and userspace must drain the ring before it handles any exit so that
 * queued writes reach the device first.
 *
 * The ring is one page per VM with the kernel's layout (`struct kvm_coalesced_mmio_ring`), which
 * KVM maps at page KVM_COALESCED_MMIO_PAGE_OFFSET of every vCPU's mmap: `first` (u32, advanced by
 * userspace as it consumes), `last` (u32, advanced by the kernel), then KVM_COALESCED_MMIO_MAX
 * entries of 24 bytes (`struct kvm_coalesced_mmio`: u64 phys_addr, u32 len, u32 pio, u8 data[8]).
 * One slot always stays free: when the ring is full, or userspace left `first` or `last` out of
 * range, the write is not coalesced and exits as usual (coalesced_mmio_has_room()).
 */
import { fail } from "./errors.js";

/** KVM_CHECK_EXTENSION(KVM_CAP_COALESCED_MMIO) on x86: the ring's page in the vCPU mmap. */
export const KVM_COALESCED_MMIO_PAGE_OFFSET = 2;
const PAGE = 4096;
const HEADER = 8;
const ENTRY = 24;
/** Entries in the ring: (PAGE_SIZE - sizeof(ring header)) / sizeof(entry). */
export const KVM_COALESCED_MMIO_MAX = Math.floor((PAGE - HEADER) / ENTRY);
/** KVM's NR_IOBUS_DEVS: registrations beyond it fail with ENOSPC. */
const MAX_ZONES = 1000;

/** `struct kvm_coalesced_mmio_zone`. */
export interface CoalescedMmioZone {
  /** Guest-physical address, or port number with `pio`. */
  addr: number;
  size: number;
  /** Port I/O (KVM_CAP_COALESCED_PIO) instead of MMIO. */
  pio?: boolean;
}

/** One queued write, as `readCoalesced` hands it over. */
export interface CoalescedWrite {
  addr: number;
  len: number;
  pio: boolean;
  /** The written bytes (`len` of them), little-endian. */
  data: Uint8Array;
}

interface Zone {
  addr: number;
  size: number;
  pio: boolean;
}

export class CoalescedMmio {
  /** The ring page, laid out as the kernel's (see the file comment). */
  readonly page = new Uint8Array(PAGE);
  private readonly view = new DataView(this.page.buffer);
  private readonly zones: Zone[] = [];
  private pioZones = 0;
  private mmioZones = 0;
  /** A zone was ever registered: the ring may hold entries (the ioctl layer mirrors it then). */
  used = false;

  /** KVM_REGISTER_COALESCED_MMIO. */
  register(zone: CoalescedMmioZone): void {
    const z = check(zone, "KVM_REGISTER_COALESCED_MMIO");
    if (this.zones.length >= MAX_ZONES) fail("ENOSPC", "KVM_REGISTER_COALESCED_MMIO", "TooManyZones");
    this.zones.push(z);
    this.used = true;
    if (z.pio) this.pioZones++;
    else this.mmioZones++;
  }

  /**
   * KVM_UNREGISTER_COALESCED_MMIO: removes every zone of that kind (MMIO or PIO) that contains the
   * whole range, as kvm_vm_ioctl_unregister_coalesced_mmio() does; none is not an error.
   */
  unregister(zone: CoalescedMmioZone): void {
    const z = check(zone, "KVM_UNREGISTER_COALESCED_MMIO");
    for (let i = this.zones.length - 1; i >= 0; i--) {
      const o = this.zones[i]!;
      if (o.pio !== z.pio || !contains(o, z.addr, z.size)) continue;
      this.zones.splice(i, 1);
      if (o.pio) this.pioZones--;
      else this.mmioZones--;
    }
  }

  /** The registered zones, oldest first. */
  list(): CoalescedMmioZone[] {
    return this.zones.map((z) => ({ addr: z.addr, size: z.size, pio: z.pio }));
  }

  /**
   * A guest write of `len` bytes (value as two 32-bit halves): true when a zone holds it and the
   * ring had room, so the kernel completed it (coalesced_mmio_write()).
   */
  write(pio: boolean, addr: number, len: number, lo: number, hi: number): boolean {
    if ((pio ? this.pioZones : this.mmioZones) === 0) return false;
    let inZone = false;
    for (const z of this.zones) {
      if (z.pio === pio && contains(z, addr, len)) {
        inZone = true;
        break;
      }
    }
    if (!inZone) return false;
    const v = this.view;
    // Both indexes live in a page userspace can write: range-check them as the kernel does.
    const insert = v.getUint32(4, true);
    const first = v.getUint32(0, true);
    if (
      insert >= KVM_COALESCED_MMIO_MAX ||
      (first - insert - 1 + 2 * KVM_COALESCED_MMIO_MAX) % KVM_COALESCED_MMIO_MAX === 0
    )
      return false;
    const at = HEADER + insert * ENTRY;
    v.setUint32(at, addr >>> 0, true);
    v.setUint32(at + 4, Math.floor(addr / 2 ** 32), true);
    v.setUint32(at + 8, len, true);
    v.setUint32(at + 12, pio ? 1 : 0, true);
    v.setUint32(at + 16, lo >>> 0, true);
    v.setUint32(at + 20, hi >>> 0, true);
    // Bytes past `len` are zeroed. The kernel copies only `len` bytes and leaves whatever an older
    // entry had there; readers look at `len` bytes only, so zeros are the same to them.
    if (len < 8) this.page.fill(0, at + 16 + len, at + 24);
    v.setUint32(4, (insert + 1) % KVM_COALESCED_MMIO_MAX, true);
    return true;
  }
}

function check(zone: CoalescedMmioZone, op: string): Zone {
  const { addr, size } = zone;
  if (!Number.isSafeInteger(addr) || addr < 0 || !Number.isInteger(size) || size < 0 || size > 0xffffffff)
    fail("EINVAL", op, "BadZone");
  return { addr, size, pio: zone.pio === true };
}

/** coalesced_mmio_in_range(): the whole access inside the zone. */
function contains(z: Zone, addr: number, len: number): boolean {
  return addr >= z.addr && addr + len <= z.addr + z.size;
}

/**
 * Drains a coalesced ring page (`Vm.coalescedMmio.page`, or the page at
 * KVM_COALESCED_MMIO_PAGE_OFFSET of a vCPU mmap) into `each`, oldest first, advancing `first` as
 * kvmtool's kvm_cpu__handle_coalesced_mmio() and QEMU's kvm_flush_coalesced_mmio_buffer() do.
 * Returns how many writes it handed over; `first` or `last` out of range ends the drain.
 */
export function drainCoalesced(page: Uint8Array, each: (w: CoalescedWrite) => void): number {
  const v = new DataView(page.buffer, page.byteOffset, PAGE);
  let n = 0;
  for (;;) {
    const first = v.getUint32(0, true);
    const last = v.getUint32(4, true);
    if (first === last || first >= KVM_COALESCED_MMIO_MAX || last >= KVM_COALESCED_MMIO_MAX) return n;
    const at = HEADER + first * ENTRY;
    const len = Math.min(8, v.getUint32(at + 8, true));
    each({
      addr: v.getUint32(at, true) + v.getUint32(at + 4, true) * 2 ** 32,
      len,
      pio: v.getUint32(at + 12, true) !== 0,
      data: page.slice(at + 16, at + 16 + len),
    });
    v.setUint32(0, (first + 1) % KVM_COALESCED_MMIO_MAX, true);
    n++;
  }
}
