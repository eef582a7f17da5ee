/**
 * The in-kernel irqchip of KVM_CREATE_IRQCHIP: dual PIC, IOAPIC, one LAPIC per vCPU, the GSI
 * routing between them, and the APIC bus that carries IPIs, IOAPIC messages and MSIs.
 * PIC output reaches the CPU through LINT0 in ExtINT mode (or directly when the APIC is off).
 */
import type { VmClock } from "./clock.js";
import { type ApicBus, type ApicMessage, DeliveryMode, decodeMsi, Shorthand } from "./devices/apic-bus.js";
import { IoApic, type IoApicState } from "./devices/ioapic.js";
import type { Lapic } from "./devices/lapic.js";
import { DualPic, type PicState } from "./devices/pic.js";
import {
  GsiRouting,
  KVM_IRQ_ROUTING_IRQCHIP,
  KVM_IRQCHIP_IOAPIC,
  KVM_IRQCHIP_PIC_MASTER,
} from "./irq-routing.js";

/** Who drives a GSI; a line's level is the OR of its sources (KVM's irq_source_id). */
export const IRQ_SOURCE_USERSPACE = 0;
export const IRQ_SOURCE_PIT = 1;
export const IRQ_SOURCE_IRQFD = 2;

export interface IrqchipHooks {
  /** A vCPU (by index) may have something to take: wake it. */
  kick(vcpuIndex: number): void;
}

/** The irqchip. Also the {@link ApicBus} of its LAPICs and IOAPIC. */
export class Irqchip implements ApicBus {
  readonly pic: DualPic;
  readonly ioapic: IoApic;
  readonly routing = new GsiRouting();
  readonly lapics: Lapic[] = [];
  /** Per-GSI bitmask of asserting sources. */
  private readonly levels = new Map<number, number>();
  private readonly eoiListeners = new Map<number, (() => void)[]>();

  constructor(
    readonly clock: VmClock,
    private readonly hooks: IrqchipHooks,
  ) {
    this.pic = new DualPic((level) => {
      if (!level) return;
      this.lapics.forEach((l, i) => {
        if (l.acceptsPicInterrupt()) this.hooks.kick(i);
      });
    });
    this.ioapic = new IoApic(this);
    this.routing.set(GsiRouting.defaults());
  }

  /** Adds the LAPIC of a new vCPU (its index in the VM's vCPU list). */
  addLapic(lapic: Lapic): void {
    this.lapics.push(lapic);
  }

  /**
   * KVM_IRQ_LINE: drives `gsi` for `source`. Returns KVM_IRQ_LINE_STATUS as kvm_set_irq() computes
   * it: the sum of the non-negative results of every route (PIC: 1, or 0 when coalesced; IOAPIC:
   * LAPICs reached, 0 coalesced, -1 masked; MSI: LAPICs reached), -1 when none was non-negative.
   */
  setGsi(gsi: number, level: boolean, source = IRQ_SOURCE_USERSPACE): number {
    const routes = this.routing.get(gsi);
    if (!routes) return -1;
    const old = this.levels.get(gsi) ?? 0;
    const now = level ? old | (1 << source) : old & ~(1 << source);
    this.levels.set(gsi, now);
    const line = now !== 0;
    let ret = -1;
    for (const r of routes) {
      let x: number;
      if (r.type === KVM_IRQ_ROUTING_IRQCHIP) {
        if (r.irqchip === KVM_IRQCHIP_IOAPIC) x = this.ioapic.setIrq(r.pin, line);
        else x = this.pic.setIrq(r.irqchip === KVM_IRQCHIP_PIC_MASTER ? r.pin : r.pin + 8, line);
      } else {
        // kvm_set_msi(): a deassertion is -1, an assertion a message.
        x = level ? this.signalMsi(r.addressLo, r.addressHi, r.data) : -1;
      }
      if (x >= 0) ret = x + Math.max(ret, 0);
    }
    return ret;
  }

  /** KVM_SIGNAL_MSI: LAPICs that accepted it, or -1 when no LAPIC was addressed. */
  signalMsi(addressLo: number, addressHi: number, data: number): number {
    return this.deliver(decodeMsi(addressLo, addressHi, data), -1);
  }

  /** Calls `fn` when the guest EOIs the IOAPIC pin GSI `gsi` is routed to (irqfd resample). */
  onGsiEoi(gsi: number, fn: () => void): () => void {
    const list = this.eoiListeners.get(gsi) ?? [];
    list.push(fn);
    this.eoiListeners.set(gsi, list);
    return () => {
      const l = this.eoiListeners.get(gsi);
      if (l)
        this.eoiListeners.set(
          gsi,
          l.filter((f) => f !== fn),
        );
    };
  }

  /** LAPIC EOI of a level vector: the IOAPIC re-arms, and resample listeners hear about it. */
  eoiBroadcast(vector: number): void {
    for (let pin = 0; pin < 24; pin++) {
      const e = this.ioapic.entry(pin);
      if ((e.lo & 0xff) !== vector || !(e.lo & (1 << 15))) continue;
      for (const gsi of this.routing.gsisForIoapicPin(pin))
        for (const f of this.eoiListeners.get(gsi) ?? []) f();
    }
    this.ioapic.eoi(vector);
  }

  /**
   * The APIC bus: finds the destination LAPICs (SDM 11.6.2) and hands the message over. Returns
   * what kvm_irq_delivery_to_apic() does: -1 when no LAPIC is addressed, else how many accepted.
   */
  deliver(msg: ApicMessage, sourceId: number): number {
    const targets: Lapic[] = [];
    for (const l of this.lapics) {
      switch (msg.shorthand) {
        case Shorthand.Self:
          if (l.apicId === sourceId) targets.push(l);
          break;
        case Shorthand.AllIncludingSelf:
          if (l.hwEnabled) targets.push(l);
          break;
        case Shorthand.AllExcludingSelf:
          if (l.hwEnabled && l.apicId !== sourceId) targets.push(l);
          break;
        default:
          if (l.matches(msg)) targets.push(l);
      }
    }
    if (targets.length === 0) return -1;
    if (msg.deliveryMode === DeliveryMode.LowestPriority && targets.length > 1) {
      // SDM 11.6.2.4: the target with the lowest priority; ties go to the lowest APIC id.
      let best = targets[0]!;
      for (const t of targets) {
        const d = t.ppr() - best.ppr();
        if (d < 0 || (d === 0 && t.apicId < best.apicId)) best = t;
      }
      return best.accept(msg) ? 1 : 0;
    }
    let n = 0;
    for (const t of targets) if (t.accept(msg)) n++;
    return n;
  }

  /**
   * The interrupt vCPU `index` should take now, as kvm_cpu_get_interrupt(): a PIC (ExtINT)
   * interrupt first, then the LAPIC's highest IRR above PPR. Returns -1 when none. Does not
   * acknowledge; call {@link acknowledge} when the CPU takes it.
   */
  hasInterrupt(index: number): boolean {
    const l = this.lapics[index];
    if (!l) return false;
    if (this.pic.output && l.acceptsPicInterrupt()) return true;
    return l.pendingVector() >= 0;
  }

  /** INTA for vCPU `index`: returns the vector and moves it in service, or -1. */
  acknowledge(index: number): number {
    const l = this.lapics[index];
    if (!l) return -1;
    if (this.pic.output && l.acceptsPicInterrupt()) return this.pic.acknowledge();
    const v = l.pendingVector();
    if (v >= 0) l.acknowledge(v);
    return v;
  }

  /** Earliest timer deadline of the LAPICs. */
  nextDeadlineNs(): number {
    let d = Number.POSITIVE_INFINITY;
    for (const l of this.lapics) d = Math.min(d, l.nextDeadlineNs());
    return d;
  }

  /** Fires every expired LAPIC timer. */
  tick(now: number): void {
    for (const l of this.lapics) l.tick(now);
  }

  /** LAPIC whose xAPIC page holds `gpa`, as an index, or -1. */
  lapicAt(gpa: number, vcpuIndex: number): Lapic | undefined {
    // Each vCPU sees its own APIC at its own base (SDM 11.4.1): only the accessing vCPU's counts.
    const l = this.lapics[vcpuIndex];
    if (!l) return undefined;
    const base = l.mmioBase;
    return base >= 0 && gpa >= base && gpa < base + 0x1000 ? l : undefined;
  }

  /** Does `gpa` fall in the IOAPIC window? */
  inIoapic(gpa: number): boolean {
    return gpa >= this.ioapic.baseAddress && gpa < this.ioapic.baseAddress + 0x100;
  }

  savePic(): PicState {
    return this.pic.save();
  }
  saveIoapic(): IoApicState {
    return this.ioapic.save();
  }
}
