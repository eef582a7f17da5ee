/**
 * The virtio transports of @tskvm/virtio plug into this package's buses through the interfaces
 * declared here (MmioDevice, PciFunction), checked against spec-fixed values only.
 */
import { FlatGuestMemory, MmioTransport, PciTransport, VirtioRng } from "@tskvm/virtio";
import { describe, expect, it } from "vitest";
import { MmioBus, PortBus } from "../src/devices/bus.js";
import { PCI_CONFIG_ADDRESS_PORT, PciHostBridge } from "../src/devices/pci.js";
import { VIRTIO_MMIO_BASE } from "../src/layout.js";

describe("virtio transports on the vmm buses", () => {
  it("virtio-mmio: magic, version and device id at the announced window (virtio 1.2 4.2.2)", () => {
    const mem = new FlatGuestMemory(1 << 20);
    const bus = new MmioBus();
    bus.register(VIRTIO_MMIO_BASE, 0x1000, new MmioTransport(new VirtioRng(), mem), "virtio-mmio rng");
    expect(bus.read(VIRTIO_MMIO_BASE, 4)).toBe(0x74726976); // "virt"
    expect(bus.read(VIRTIO_MMIO_BASE + 4, 4)).toBe(2); // version 2: modern
    expect(bus.read(VIRTIO_MMIO_BASE + 8, 4)).toBe(4); // device id 4: entropy
    const data = new Uint8Array(4);
    bus.readBytes(VIRTIO_MMIO_BASE, data);
    expect(new TextDecoder().decode(data)).toBe("virt");
    expect(bus.read(VIRTIO_MMIO_BASE + 0x1000, 4)).toBe(0xffffffff);
    expect(bus.unregister("virtio-mmio rng")).toBe(1);
    expect(bus.read(VIRTIO_MMIO_BASE, 4)).toBe(0xffffffff);
  });

  it("virtio-pci: enumerated through conf1 at 00:01.0 with vendor 0x1af4, device 0x1040 + id (virtio 1.2 4.1.2)", () => {
    const mem = new FlatGuestMemory(1 << 20);
    const host = new PciHostBridge();
    host.attach(1, new PciTransport(new VirtioRng(), mem));
    const ports = new PortBus();
    ports.register(PCI_CONFIG_ADDRESS_PORT, 8, host, "pci");
    ports.write(0xcf8, 4, 0x80000000 | (1 << 11));
    expect(ports.read(0xcfc, 2)).toBe(0x1af4);
    expect(ports.read(0xcfe, 2)).toBe(0x1044);
    // BAR sizing through the bridge reaches the transport's own BAR logic.
    ports.write(0xcf8, 4, 0x80000000 | (1 << 11) | 0x10);
    ports.write(0xcfc, 4, 0xffffffff);
    const sized = ports.read(0xcfc, 4);
    expect(sized & 0x1).toBe(0); // a memory BAR
    expect((~(sized & ~0xf) + 1) >>> 0).toBeGreaterThanOrEqual(0x1000);
  });
});
