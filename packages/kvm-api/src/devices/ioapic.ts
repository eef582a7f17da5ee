/**
 * I/O APIC with 24 redirection entries at 0xfec00000 (Intel 82093AA datasheet; KVM
 * arch/x86/kvm/ioapic.c; Linux arch/x86/kernel/apic/io_apic.c programs it). Register access is
 * indirect: IOREGSEL (offset 0x00) selects, IOWIN (0x10) reads/writes 32 bits.
 *
 * Version 0x11 (as KVM's): no EOI register; level-triggered entries are re-armed by the EOI
 * broadcast from the local APICs, which clears Remote IRR (82093AA 3.2.4, bit 14).
 */
import { type ApicBus, DeliveryMode, Shorthand } from "./apic-bus.js";

export const IOAPIC_DEFAULT_BASE = 0xfec00000;
export const IOAPIC_MMIO_SIZE = 0x100;
export const IOAPIC_NUM_PINS = 24;
const IOAPIC_VERSION = 0x11;

/** Register offsets in the MMIO window. */
const IOREGSEL = 0x00;
const IOWIN = 0x10;
/** Indirect register indices. */
const IOAPICID = 0x00;
const IOAPICVER = 0x01;
const IOAPICARB = 0x02;
const IOREDTBL = 0x10;

/** Redirection entry bits (low dword). */
const RTE_VECTOR = 0xff;
const RTE_DELIVERY_STATUS = 1 << 12; // read-only
const RTE_POLARITY = 1 << 13; // 1 = active low
const RTE_REMOTE_IRR = 1 << 14; // read-only
const RTE_LEVEL = 1 << 15;
const RTE_MASKED = 1 << 16;
const RTE_RO_BITS = RTE_DELIVERY_STATUS | RTE_REMOTE_IRR;

/** Saved state, as `struct kvm_ioapic_state` (KVM_GET_IRQCHIP chip 2). */
export interface IoApicState {
  baseAddress: number;
  ioregsel: number;
  /** APIC id (bits 27:24 of IOAPICID). */
  id: number;
  /** Pins with a pending request (level lines: asserted; edge lines: latched, not yet sent). */
  irr: number;
  /** Redirection entries as low/high dwords. */
  redirtbl: { lo: number; hi: number }[];
}

/** The I/O APIC. Pins are driven by `setIrq`; messages leave through the {@link ApicBus}. */
export class IoApic {
  private ioregsel = 0;
  private id = 0;
  private irr = 0;
  private readonly lo = new Uint32Array(IOAPIC_NUM_PINS).fill(RTE_MASKED);
  private readonly hi = new Uint32Array(IOAPIC_NUM_PINS);
  baseAddress = IOAPIC_DEFAULT_BASE;

  constructor(private readonly bus: ApicBus) {}

  /**
   * Drives pin `pin`. `level` is the logical assertion (as KVM_IRQ_LINE gives it): the polarity
   * bit of the entry is not applied, as in KVM, whose GSI levels are already logical.
   */
  setIrq(pin: number, level: boolean): number {
    if (pin < 0 || pin >= IOAPIC_NUM_PINS) return -1;
    const mask = 1 << pin;
    const old = this.irr;
    if (!level) {
      this.irr &= ~mask;
      return 1;
    }
    this.irr |= mask;
    const lo = this.lo[pin]!;
    const edge = (lo & RTE_LEVEL) === 0;
    // Edge: only a rising edge is an interrupt. Level: while Remote IRR is set the entry waits
    // for the EOI (82093AA: "Remote IRR ... reset when an EOI message ... is received").
    // The return values are KVM's ioapic_set_irq(): 0 coalesced, -1 masked, else LAPICs reached.
    if (edge ? old & mask : lo & RTE_REMOTE_IRR) return 0;
    return this.service(pin);
  }

  /** EOI broadcast from a LAPIC for a level-triggered `vector`. */
  eoi(vector: number): void {
    for (let pin = 0; pin < IOAPIC_NUM_PINS; pin++) {
      const lo = this.lo[pin]!;
      if ((lo & RTE_VECTOR) !== vector || (lo & RTE_LEVEL) === 0) continue;
      this.lo[pin] = lo & ~RTE_REMOTE_IRR;
      // The line is still asserted: the device has more to say, deliver again.
      if (this.irr & (1 << pin) && !(lo & RTE_MASKED)) this.service(pin);
    }
  }

  /** MMIO read of `size` bytes at `offset` in the window; unaligned parts read as the register's bytes. */
  mmioRead(offset: number, size: number): number {
    const reg = offset & ~3;
    let v = 0;
    if (reg === IOREGSEL) v = this.ioregsel;
    else if (reg === IOWIN) v = this.readIndirect(this.ioregsel);
    const shift = (offset & 3) * 8;
    if (size >= 4) return (v >>> shift) >>> 0;
    return (v >>> shift) & ((1 << (size * 8)) - 1);
  }

  mmioWrite(offset: number, size: number, value: number): void {
    const reg = offset & ~3;
    if (reg === IOREGSEL) {
      this.ioregsel = value & 0xff;
    } else if (reg === IOWIN) {
      // Narrow writes to IOWIN: KVM treats them as a 32-bit write of the given value; so do we.
      this.writeIndirect(this.ioregsel, size >= 4 ? value >>> 0 : value & ((1 << (size * 8)) - 1));
    }
  }

  /** The redirection entry of `pin` as two dwords (for tests and the irqchip state). */
  entry(pin: number): { lo: number; hi: number } {
    return { lo: this.lo[pin]!, hi: this.hi[pin]! };
  }

  save(): IoApicState {
    const redirtbl = [];
    for (let i = 0; i < IOAPIC_NUM_PINS; i++) redirtbl.push({ lo: this.lo[i]!, hi: this.hi[i]! });
    return { baseAddress: this.baseAddress, ioregsel: this.ioregsel, id: this.id, irr: this.irr, redirtbl };
  }

  restore(s: IoApicState): void {
    this.baseAddress = s.baseAddress;
    this.ioregsel = s.ioregsel & 0xff;
    this.id = s.id & 0xf;
    this.irr = 0;
    for (let i = 0; i < IOAPIC_NUM_PINS; i++) {
      const e = s.redirtbl[i];
      this.lo[i] = e ? e.lo >>> 0 : RTE_MASKED;
      this.hi[i] = e ? e.hi & 0xff000000 : 0;
    }
    // KVM kvm_set_ioapic() -> kvm_ioapic_inject_all(): asserted pins are raised again, so an
    // unmasked level line without Remote IRR (or a latched edge) is delivered now.
    for (let pin = 0; pin < IOAPIC_NUM_PINS; pin++) if (s.irr & (1 << pin)) this.setIrq(pin, true);
  }

  private readIndirect(sel: number): number {
    switch (sel) {
      case IOAPICID:
      case IOAPICARB:
        return (this.id & 0xf) << 24;
      case IOAPICVER:
        return (IOAPIC_VERSION | ((IOAPIC_NUM_PINS - 1) << 16)) >>> 0;
    }
    const idx = (sel - IOREDTBL) >> 1;
    if (sel < IOREDTBL || idx >= IOAPIC_NUM_PINS) return 0xffffffff >>> 0; // KVM reads ~0 past the table
    return sel & 1 ? this.hi[idx]! : this.lo[idx]!;
  }

  private writeIndirect(sel: number, v: number): void {
    if (sel === IOAPICID) {
      this.id = (v >>> 24) & 0xf;
      return;
    }
    const idx = (sel - IOREDTBL) >> 1;
    if (sel < IOREDTBL || idx >= IOAPIC_NUM_PINS) return; // IOAPICVER/ARB are read-only
    if (sel & 1) {
      this.hi[idx] = v & 0xff000000; // only the destination field (bits 63:56) exists
      return;
    }
    const old = this.lo[idx]!;
    let lo = ((v & ~RTE_RO_BITS) | (old & RTE_RO_BITS)) >>> 0;
    // KVM ioapic_write_indirect: an edge entry has no Remote IRR.
    if (!(lo & RTE_LEVEL)) lo &= ~RTE_REMOTE_IRR;
    this.lo[idx] = lo >>> 0;
    // Unmasking a level entry whose line is asserted delivers it now.
    if (lo & RTE_LEVEL && this.irr & (1 << idx) && !(lo & RTE_MASKED) && !(lo & RTE_REMOTE_IRR))
      this.service(idx);
  }

  private service(pin: number): number {
    const lo = this.lo[pin]!;
    if (lo & RTE_MASKED) return -1; // masked: an edge is dropped, a level waits in irr
    const level = (lo & RTE_LEVEL) !== 0;
    if (!level) this.irr &= ~(1 << pin);
    const delivered = this.bus.deliver(
      {
        vector: lo & RTE_VECTOR,
        deliveryMode: (lo >>> 8) & 7,
        logical: ((lo >>> 11) & 1) === 1,
        dest: this.hi[pin]! >>> 24,
        levelTriggered: level,
        assert: true,
        shorthand: Shorthand.None,
      },
      -1,
    );
    // Remote IRR: set for a level interrupt once sent, until the EOI. KVM's ioapic_service() sets it
    // for any non-zero delivery result, -1 (nobody addressed) included.
    if (level && delivered !== 0 && ((lo >>> 8) & 7) !== DeliveryMode.ExtInt)
      this.lo[pin] = lo | RTE_REMOTE_IRR;
    return delivered;
  }
}

export { RTE_LEVEL, RTE_MASKED, RTE_POLARITY, RTE_REMOTE_IRR };
