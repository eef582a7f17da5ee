/**
 * The PC-compatible platform around the CPU: which legacy device sits at which port and IRQ,
 * and where each virtio device goes (PCI slot with an INTx route, or an MMIO window announced
 * on the command line). Pure wiring: the interrupt lines come from an injected factory (the
 * irqchip, once kvm-api is wired) and machine-level events go to one callback.
 */
import { type MpTableLayout, type PciIntxRoute, writeMpTable } from "./boot/mptable.js";
import { writePirTable } from "./boot/pirtable.js";
import { type IrqLine, PortBus } from "./devices/bus.js";
import { CMOS_INDEX_PORT, Cmos, RTC_IRQ } from "./devices/cmos.js";
import { I8042, I8042_AUX_IRQ, I8042_COMMAND_PORT, I8042_DATA_PORT, I8042_KBD_IRQ } from "./devices/i8042.js";
import { DEBUG_EXIT_PORT, DEBUG_EXIT_SIZE, DebugExit, POST_PORT, PostPort } from "./devices/misc.js";
import { PCI_CONFIG_ADDRESS_PORT, PciHostBridge } from "./devices/pci.js";
import { COM1_IRQ, COM1_PORT, Uart16550 } from "./devices/uart16550.js";
import { VIRTIO_MMIO_BASE, VIRTIO_MMIO_STRIDE, virtioMmioCmdline } from "./layout.js";
import type { GuestMemory } from "./memory.js";

/** Something the machine (not a device register) must act on. */
export type MachineEvent =
  /** The guest pulsed the reset line (i8042 0xFE): Linux's `reboot`. */
  | { kind: "reset" }
  /** isa-debug-exit: the run ends with this exit status. */
  | { kind: "debug-exit"; status: number };

export interface LegacyDevices {
  ports: PortBus;
  uart: Uart16550;
  i8042: I8042;
  cmos: Cmos;
  post: PostPort;
  pci: PciHostBridge;
  debugExit: DebugExit | undefined;
}

export interface LegacyOptions {
  memBytes: number;
  debugExit: boolean;
  /** An interrupt line for ISA IRQ / IOAPIC pin `n`. */
  irq: (n: number) => IrqLine;
  onEvent: (e: MachineEvent) => void;
  /** Serial output. */
  onSerial: (byte: number) => void;
  /** Host clock for the RTC (ms since the epoch). */
  clock?: () => number;
}

/** Build the legacy devices and register them at their PC ports. */
export function createLegacyDevices(o: LegacyOptions): LegacyDevices {
  const ports = new PortBus();
  const uart = new Uart16550({ onTransmit: o.onSerial, irq: o.irq(COM1_IRQ) });
  ports.register(COM1_PORT, 8, uart, "serial 16550A (ttyS0)", { byteWide: true });
  const i8042 = new I8042({
    onReset: () => o.onEvent({ kind: "reset" }),
    kbdIrq: o.irq(I8042_KBD_IRQ),
    auxIrq: o.irq(I8042_AUX_IRQ),
  });
  const kb = i8042.portDevices();
  ports.register(I8042_DATA_PORT, 1, kb.data, "i8042 data");
  ports.register(I8042_COMMAND_PORT, 1, kb.command, "i8042 status/command");
  const cmos = new Cmos({
    irq: o.irq(RTC_IRQ),
    memBytes: o.memBytes,
    ...(o.clock ? { clock: o.clock } : {}),
  });
  ports.register(CMOS_INDEX_PORT, 2, cmos, "cmos/rtc");
  const post = new PostPort();
  ports.register(POST_PORT, 1, post, "post code");
  const pci = new PciHostBridge();
  ports.register(PCI_CONFIG_ADDRESS_PORT, 8, pci, "pci conf1");
  let debugExit: DebugExit | undefined;
  if (o.debugExit) {
    debugExit = new DebugExit((status) => o.onEvent({ kind: "debug-exit", status }));
    ports.register(DEBUG_EXIT_PORT, DEBUG_EXIT_SIZE, debugExit, "isa-debug-exit");
  }
  return { ports, uart, i8042, cmos, post, pci, debugExit };
}

export type VirtioKind = "blk" | "net" | "balloon" | "gpu" | "console" | "rng";

/** Where one virtio device is placed. */
export type VirtioPlacement =
  | { kind: VirtioKind; transport: "pci"; slot: number; intxPin: number; label: string }
  | { kind: VirtioKind; transport: "mmio"; base: number; irq: number; label: string };

/** ISA IRQs free for virtio-mmio devices (0 timer, 1 kbd, 2 cascade, 4 COM1, 8 RTC, 12 aux are taken). */
export const MMIO_IRQS = [5, 6, 7, 9, 10, 11, 14, 15] as const;
/** PCI INTA# of slot s goes to IOAPIC pin 16 + (s - 1) % 8: the pins no ISA IRQ uses. */
export const pciIntxPin = (slot: number) => 16 + ((slot - 1) % 8);

/** A device list that does not fit the machine (too many MMIO devices or PCI slots). */
export class MachineError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MachineError";
  }
}

/** Place the devices: PCI slots from 1, MMIO windows from VIRTIO_MMIO_BASE. */
export function placeVirtioDevices(
  devs: { kind: VirtioKind; transport: "pci" | "mmio"; label: string }[],
): VirtioPlacement[] {
  let slot = 1;
  let mmio = 0;
  return devs.map((d) => {
    if (d.transport === "pci") {
      if (slot > 31) throw new MachineError("too many PCI devices (31 slots)");
      const s = slot++;
      return { kind: d.kind, transport: "pci", slot: s, intxPin: pciIntxPin(s), label: d.label };
    }
    const irq = MMIO_IRQS[mmio];
    if (irq === undefined)
      throw new MachineError(`too many virtio-mmio devices (at most ${MMIO_IRQS.length})`);
    const base = VIRTIO_MMIO_BASE + mmio * VIRTIO_MMIO_STRIDE;
    mmio++;
    return { kind: d.kind, transport: "mmio", base, irq, label: d.label };
  });
}

/** The kernel command line: the user's, then one virtio_mmio.device= per MMIO device. */
export function kernelCmdline(append: string, placed: VirtioPlacement[]): string {
  const extra = placed.flatMap((p) => (p.transport === "mmio" ? [virtioMmioCmdline(p.base, p.irq)] : []));
  return [append, ...extra].filter((s) => s !== "").join(" ");
}

/** Write the MP table with the PCI INTx routes of the placed devices, and the (empty) $PIR table. */
export function writePlatformTables(
  mem: GuestMemory,
  cpus: number,
  placed: VirtioPlacement[],
): MpTableLayout {
  const pciRoutes: PciIntxRoute[] = placed.flatMap((p) =>
    p.transport === "pci" ? [{ slot: p.slot, pin: 1, ioapicPin: p.intxPin }] : [],
  );
  writePirTable(mem);
  return writeMpTable(mem, { cpus, pciRoutes });
}
