/**
 * GSI routing (KVM_SET_GSI_ROUTING, api.rst 4.52) and the default table KVM_CREATE_IRQCHIP
 * installs: GSIs 0-15 go to both the PIC (master 0-7, slave 8-15) and the IOAPIC pin of the same
 * number, GSIs 16-23 to the IOAPIC only (api.rst 4.24; virt/kvm/irqchip.c).
 */
import { fail } from "./errors.js";

export const KVM_IRQCHIP_PIC_MASTER = 0;
export const KVM_IRQCHIP_PIC_SLAVE = 1;
export const KVM_IRQCHIP_IOAPIC = 2;
export const KVM_IRQ_ROUTING_IRQCHIP = 1;
export const KVM_IRQ_ROUTING_MSI = 2;
/** KVM_MAX_IRQ_ROUTES on x86. */
export const KVM_MAX_IRQ_ROUTES = 4096;

/** One `struct kvm_irq_routing_entry`. */
export type IrqRoutingEntry =
  | { gsi: number; type: typeof KVM_IRQ_ROUTING_IRQCHIP; flags?: number; irqchip: number; pin: number }
  | {
      gsi: number;
      type: typeof KVM_IRQ_ROUTING_MSI;
      flags?: number;
      addressLo: number;
      addressHi: number;
      data: number;
    };

/** The routing table: GSI -> its entries (a GSI may reach one pin per irqchip, or one MSI). */
export class GsiRouting {
  private map = new Map<number, IrqRoutingEntry[]>();
  private table: IrqRoutingEntry[] = [];

  /** Validates and installs a whole table, as KVM_SET_GSI_ROUTING replaces the old one. */
  set(entries: readonly IrqRoutingEntry[]): void {
    const step = "KVM_SET_GSI_ROUTING";
    if (entries.length > KVM_MAX_IRQ_ROUTES) fail("EINVAL", step, "TooManyRoutes");
    const map = new Map<number, IrqRoutingEntry[]>();
    for (const e of entries) {
      if (!Number.isInteger(e.gsi) || e.gsi < 0 || e.gsi >= KVM_MAX_IRQ_ROUTES)
        fail("EINVAL", step, "BadGsi");
      if (e.flags) fail("EINVAL", step, "BadFlags");
      if (e.type === KVM_IRQ_ROUTING_IRQCHIP) {
        const max = e.irqchip === KVM_IRQCHIP_IOAPIC ? 24 : e.irqchip <= 1 ? 8 : -1;
        if (max < 0) fail("EINVAL", step, "BadIrqchip", `irqchip ${e.irqchip}`);
        if (!Number.isInteger(e.pin) || e.pin < 0 || e.pin >= max)
          fail("EINVAL", step, "BadPin", `pin ${e.pin}`);
      } else if (e.type !== KVM_IRQ_ROUTING_MSI) {
        fail("EINVAL", step, "BadType");
      }
      const list = map.get(e.gsi) ?? [];
      // irqchip.c setup_routing_entry(): an MSI owns its GSI; an irqchip pin at most once per chip.
      for (const o of list) {
        if (
          o.type !== KVM_IRQ_ROUTING_IRQCHIP ||
          e.type !== KVM_IRQ_ROUTING_IRQCHIP ||
          o.irqchip === e.irqchip
        ) {
          fail("EINVAL", step, "DuplicateRoute", `gsi ${e.gsi}`);
        }
      }
      list.push({ ...e });
      map.set(e.gsi, list);
    }
    this.map = map;
    this.table = entries.map((e) => ({ ...e }));
  }

  get(gsi: number): readonly IrqRoutingEntry[] | undefined {
    return this.map.get(gsi);
  }

  entries(): readonly IrqRoutingEntry[] {
    return this.table;
  }

  /** GSIs whose IOAPIC route is `pin` (for EOI notifications). */
  gsisForIoapicPin(pin: number): number[] {
    const out: number[] = [];
    for (const [gsi, list] of this.map) {
      if (
        list.some(
          (e) => e.type === KVM_IRQ_ROUTING_IRQCHIP && e.irqchip === KVM_IRQCHIP_IOAPIC && e.pin === pin,
        )
      ) {
        out.push(gsi);
      }
    }
    return out;
  }

  /** The default table of KVM_CREATE_IRQCHIP. */
  static defaults(): IrqRoutingEntry[] {
    const t: IrqRoutingEntry[] = [];
    for (let gsi = 0; gsi < 24; gsi++) {
      if (gsi < 16) {
        t.push({
          gsi,
          type: KVM_IRQ_ROUTING_IRQCHIP,
          irqchip: gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE,
          pin: gsi & 7,
        });
      }
      t.push({ gsi, type: KVM_IRQ_ROUTING_IRQCHIP, irqchip: KVM_IRQCHIP_IOAPIC, pin: gsi });
    }
    return t;
  }
}
