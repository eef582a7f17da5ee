/**
 * The virtio devices of a VM, built from `@tskvm/virtio` on the placements `machine.ts` chose:
 * PCI transports plugged into the host bridge with BAR 0 pre-assigned in the PCI hole (as
 * firmware would; Linux keeps valid assignments) and routed on the MMIO bus, MMIO transports at
 * their announced windows. Interrupts: INTx / the MMIO IRQ through the injected lines; MSI-X
 * messages go to the injected MSI sink (the LAPIC, once kvm-api is wired).
 */
import {
  type BalloonMemory,
  BarLayout,
  type IrqLine,
  L2Switch,
  MmioTransport,
  type MsiSink,
  NO_MSI,
  PciTransport,
  VirtioBalloon,
  VirtioBlk,
  VirtioConsole,
  type VirtioDevice,
  VirtioGpu,
  VirtioNet,
  VirtioRng,
} from "@tskvm/virtio";
import { FileBlockBackend } from "@tskvm/virtio/node";
import type { VmConfig } from "./config.js";
import type { MmioBus } from "./devices/bus.js";
import { PciCfg, PciCommand, type PciFunction, type PciHostBridge } from "./devices/pci.js";
import { PCI_MMIO_BASE, PCI_MMIO_END, VIRTIO_MMIO_STRIDE } from "./layout.js";
import { nodeCrypto } from "./lazy-node.js";
import type { VirtioPlacement } from "./machine.js";
import type { GuestRam } from "./memory.js";

/**
 * Balloon memory over GuestRam: pages the guest gives up are zeroed (an ArrayBuffer cannot be
 * shrunk in place; kvm-api's slots may release them for real later).
 */
export class GuestRamBalloon implements BalloonMemory {
  constructor(private readonly ram: GuestRam) {}
  reclaim(gpa: number, len: number): boolean {
    const v = this.ram.slice(gpa, len);
    if (!v) return false;
    v.fill(0);
    return true;
  }
  restore(): void {}
  discard(gpa: number, len: number): boolean {
    const v = this.ram.slice(gpa, len);
    if (!v) return false;
    v.fill(0);
    return true;
  }
}

/**
 * A PciTransport as the host bridge sees it: configuration cycles pass through, and after each
 * write BAR 0 is (re)mapped on the MMIO bus while memory decoding is on.
 */
export class PciBarRouter implements PciFunction {
  private mapped: number | undefined;
  constructor(
    readonly transport: PciTransport,
    private readonly mmio: MmioBus,
    readonly name: string,
  ) {}

  configRead(offset: number, size: 1 | 2 | 4): number {
    return this.transport.configRead(offset, size);
  }

  configWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    this.transport.configWrite(offset, size, value);
    this.remap();
  }

  /** Where BAR 0 is routed now, if anywhere. */
  get barAddress(): number | undefined {
    return this.mapped;
  }

  private remap(): void {
    const t = this.transport;
    const addr = t.memoryEnabled ? t.bar0Address() : undefined;
    if (addr === this.mapped) return;
    if (this.mapped !== undefined) this.mmio.unregister(this.name);
    this.mapped = undefined;
    if (addr === undefined || addr === 0) return;
    try {
      this.mmio.register(
        addr,
        BarLayout.SIZE,
        { read: (o, s) => t.barRead(0, o, s), write: (o, s, v) => t.barWrite(0, o, s, v) },
        this.name,
      );
      this.mapped = addr;
    } catch {
      // The guest placed the BAR over another device's: it decodes nothing until moved.
    }
  }
}

export interface VirtioDevices {
  console: VirtioConsole;
  rng: VirtioRng;
  blk: VirtioBlk[];
  net: VirtioNet | undefined;
  balloon: VirtioBalloon | undefined;
  gpu: VirtioGpu | undefined;
  /**
   * What the display of scanout 0 shows: the framebuffer as of the last update the guest flushed.
   * Like a monitor it keeps the last picture when the guest resets the device (Linux does on
   * `reboot` and `poweroff`), so a screenshot at the end of a run still has it.
   */
  display(): ReturnType<VirtioGpu["framebuffer"]>;
  /** The PCI functions by slot, for inspection. */
  pci: Map<number, PciBarRouter>;
  /** Close the disk files. */
  close(): void;
}

export interface VirtioDeps {
  memory: GuestRam;
  irq: (n: number) => IrqLine;
  msi?: MsiSink;
  mmio: MmioBus;
  pci: PciHostBridge;
  /** hvc0 output. */
  onConsole: (bytes: Uint8Array) => void;
  /** Virtual switches by name (`--net NAME`); a missing one is created. */
  switches: Map<string, L2Switch>;
}

/** A random MAC in QEMU's 52:54:00 locally administered, unicast range (node:crypto: lazy-node.ts). */
function randomMac(): Uint8Array {
  return new Uint8Array([0x52, 0x54, 0x00, ...nodeCrypto().randomBytes(3)]);
}

/** Build and wire the devices of `placed` (from `placeVirtioDevices`) for `config`. */
export function createVirtioDevices(
  config: VmConfig,
  placed: VirtioPlacement[],
  deps: VirtioDeps,
): VirtioDevices {
  const files: FileBlockBackend[] = [];
  const disks = [...config.disks];
  const out: VirtioDevices = {
    console: new VirtioConsole({ onOutput: deps.onConsole }),
    rng: new VirtioRng(),
    blk: [],
    net: undefined,
    balloon: undefined,
    gpu: undefined,
    display: () => undefined,
    pci: new Map(),
    close: () => {
      for (const f of files.splice(0)) f.close();
    },
  };
  let consoleUsed = false;
  let rngUsed = false;
  try {
    for (const p of placed) {
      let dev: VirtioDevice;
      switch (p.kind) {
        case "console":
          if (consoleUsed) throw new Error("one virtio-console only");
          consoleUsed = true;
          dev = out.console;
          break;
        case "rng":
          if (rngUsed) throw new Error("one virtio-rng only");
          rngUsed = true;
          dev = out.rng;
          break;
        case "blk": {
          const d = disks.shift();
          if (!d) throw new Error("more blk placements than disks");
          const file = new FileBlockBackend(d.path, { readOnly: d.readOnly });
          files.push(file);
          const blk = new VirtioBlk(file, { id: d.path.slice(-20) });
          out.blk.push(blk);
          dev = blk;
          break;
        }
        case "net": {
          const name = config.net ?? "default";
          let sw = deps.switches.get(name);
          if (!sw) {
            sw = new L2Switch();
            deps.switches.set(name, sw);
          }
          const net = new VirtioNet({ mac: randomMac() });
          net.setBackend(sw.attach(net));
          out.net = net;
          dev = net;
          break;
        }
        case "balloon":
          // deflate-on-oom off, as QEMU's and Firecracker's defaults: the guest then takes
          // inflated pages out of MemTotal (Linux virtio_balloon.c adjust_managed_page_count),
          // so the memory visibly leaves the guest, and only the host gives it back.
          // Free page reporting: the blocks Linux reports are zeroed (GuestRamBalloon.discard) and
          // counted in balloon.reportedBytes; hinting runs when the host asks (requestFreePageHints).
          out.balloon = new VirtioBalloon(new GuestRamBalloon(deps.memory), {
            deflateOnOom: false,
            pageReporting: config.balloon?.reporting ?? true,
            freePageHint: config.balloon?.hinting ?? false,
          });
          dev = out.balloon;
          break;
        case "gpu": {
          const gpu = new VirtioGpu();
          // The resource's pixels stay referenced here after a device reset drops the resource.
          let shown: ReturnType<VirtioGpu["framebuffer"]>;
          gpu.onChange((e) => {
            if (e.scanout === 0) shown = gpu.framebuffer(0) ?? shown;
          });
          out.gpu = gpu;
          out.display = () => gpu.framebuffer(0) ?? shown;
          dev = gpu;
          break;
        }
      }
      if (p.transport === "mmio") {
        deps.mmio.register(
          p.base,
          VIRTIO_MMIO_STRIDE,
          new MmioTransport(dev, deps.memory, deps.irq(p.irq)),
          p.label,
        );
      } else {
        const t = new PciTransport(dev, deps.memory, deps.irq(p.intxPin), deps.msi ?? NO_MSI);
        const fn = new PciBarRouter(t, deps.mmio, p.label);
        deps.pci.attach(p.slot, fn);
        out.pci.set(p.slot, fn);
        // Firmware's job, done here: BAR 0 in the PCI hole, memory decoding and bus mastering
        // on, and the interrupt line register naming the IOAPIC pin of INTA#.
        const bar = PCI_MMIO_BASE + (p.slot - 1) * BarLayout.SIZE;
        if (bar + BarLayout.SIZE > PCI_MMIO_END) throw new Error("PCI hole exhausted");
        fn.configWrite(PciCfg.BAR0, 4, bar);
        fn.configWrite(PciCfg.INTERRUPT_LINE, 1, p.intxPin);
        fn.configWrite(PciCfg.COMMAND, 2, PciCommand.MEMORY | PciCommand.BUS_MASTER);
      }
    }
  } catch (e) {
    out.close();
    throw e;
  }
  return out;
}
