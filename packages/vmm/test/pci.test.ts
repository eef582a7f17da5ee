import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { PortBus } from "../src/devices/bus.js";
import {
  PCI_CONFIG_ADDRESS_PORT,
  PciCfg,
  PciCommand,
  PciConfigSpace,
  PciHostBridge,
  PciStatus,
} from "../src/devices/pci.js";

function setup() {
  const host = new PciHostBridge();
  const bus = new PortBus();
  bus.register(PCI_CONFIG_ADDRESS_PORT, 8, host, "pci-conf1");
  const addr = (slot: number, fn: number, reg: number, busNo = 0) =>
    (0x80000000 | (busNo << 16) | (slot << 11) | (fn << 8) | (reg & 0xfc)) >>> 0;
  /** Linux pci_conf1_read(): outl(address, 0xCF8); in{b,w,l}(0xCFC + (reg & 3)). */
  const read = (slot: number, fn: number, reg: number, size: 1 | 2 | 4, busNo = 0) => {
    bus.write(0xcf8, 4, addr(slot, fn, reg, busNo));
    return bus.read(0xcfc + (reg & 3), size);
  };
  const write = (slot: number, fn: number, reg: number, size: 1 | 2 | 4, v: number) => {
    bus.write(0xcf8, 4, addr(slot, fn, reg));
    bus.write(0xcfc + (reg & 3), size, v);
  };
  return { host, bus, read, write };
}

function device() {
  const cfg = new PciConfigSpace({
    vendorId: 0x1af4,
    deviceId: 0x1042,
    classCode: 0x018000,
    subsystemVendorId: 0x1af4,
    subsystemId: 0x0002,
    interruptPin: 1,
  });
  cfg.setBar(0, { kind: "io", size: 0x20 });
  cfg.setBar(1, { kind: "mem32", size: 0x1000 });
  cfg.setBar(2, { kind: "mem64", size: 0x4000, prefetchable: true });
  return cfg;
}

describe("PCI configuration mechanism #1", () => {
  it("pci_check_type1(): a dword 0x80000000 written to 0xCF8 reads back; byte writes there are not latched", () => {
    const { bus } = setup();
    bus.write(0xcfb, 1, 0x01);
    bus.write(0xcf8, 4, 0x80000000);
    expect(bus.read(0xcf8, 4)).toBe(0x80000000);
    bus.write(0xcf8, 4, 0xffffffff);
    expect(bus.read(0xcf8, 4)).toBe(0x80fffffc); // reserved 30:24 and 1:0 read 0
  });

  it("pci_sanity_check(): a host bridge at 00:00.0; empty slots read all ones", () => {
    const { read } = setup();
    expect(read(0, 0, PciCfg.VENDOR_ID, 2)).toBe(0x8086);
    expect(read(0, 0, PciCfg.SUBCLASS, 2)).toBe(0x0600); // PCI_CLASS_BRIDGE_HOST
    expect(read(0, 0, PciCfg.HEADER_TYPE, 1)).toBe(0);
    for (let slot = 1; slot < 32; slot++) expect(read(slot, 0, 0, 4)).toBe(0xffffffff);
    expect(read(0, 0, 0, 4, 1)).toBe(0xffffffff); // bus 1 does not exist
  });

  it("enumerates an attached device; functions of an absent function 0 are hidden", () => {
    const t = setup();
    t.host.attach(3, device());
    expect(t.read(3, 0, 0, 4)).toBe(0x10421af4);
    expect(t.read(3, 0, PciCfg.CLASS, 1)).toBe(0x01);
    expect(t.read(3, 0, PciCfg.INTERRUPT_PIN, 1)).toBe(1);
    expect(t.read(3, 1, 0, 4)).toBe(0xffffffff);
    t.host.attach(5, device(), 1);
    expect(t.read(5, 1, 0, 4)).toBe(0xffffffff);
    expect(t.host.freeSlot()).toBe(1);
    expect(() => t.host.attach(3, device())).toThrow("is taken");
  });

  it("byte and word accesses at 0xCFC-0xCFF reach the right bytes", () => {
    const t = setup();
    t.host.attach(2, device());
    expect(t.read(2, 0, 0x02, 2)).toBe(0x1042);
    expect(t.read(2, 0, 0x03, 1)).toBe(0x10);
    t.write(2, 0, PciCfg.INTERRUPT_LINE, 1, 11);
    expect(t.read(2, 0, PciCfg.INTERRUPT_LINE, 1)).toBe(11);
    t.write(2, 0, 0x3c, 4, 0xffffffff);
    expect((t.read(2, 0, 0x3c, 4) >>> 8) & 0xff).toBe(1); // the pin is read-only
  });
});

describe("BAR sizing (PCI 3.0 6.2.5.1), as Linux's __pci_read_base does it", () => {
  function size(t: ReturnType<typeof setup>, reg: number): { orig: number; sized: number } {
    const orig = t.read(4, 0, reg, 4);
    t.write(4, 0, reg, 4, 0xffffffff);
    const sized = t.read(4, 0, reg, 4);
    t.write(4, 0, reg, 4, orig);
    return { orig, sized };
  }

  it("io, mem32 and mem64 prefetchable BARs report their size and type", () => {
    const t = setup();
    t.host.attach(4, device());
    const io = size(t, 0x10);
    expect(io.sized).toBe(0xffffffe1);
    expect(io.orig & 1).toBe(1);
    const m32 = size(t, 0x14);
    expect(m32.sized).toBe(0xfffff000);
    const lo = size(t, 0x18);
    expect(lo.sized).toBe((0xffffc000 | 0x4 | 0x8) >>> 0);
    const hi = size(t, 0x1c);
    expect(hi.sized).toBe(0xffffffff);
    expect(t.read(4, 0, 0x20, 4)).toBe(0); // no BAR 4
  });

  it("an assigned BAR decodes only with the COMMAND enable bit, and changes are announced", () => {
    const t = setup();
    const dev = device();
    let changes = 0;
    dev.onMappingChange = () => changes++;
    t.host.attach(4, dev);
    t.write(4, 0, 0x14, 4, 0xc0001000);
    t.write(4, 0, 0x18, 4, 0x00008000);
    t.write(4, 0, 0x1c, 4, 0x1);
    expect(dev.barAddress(1)).toBeUndefined();
    t.write(4, 0, PciCfg.COMMAND, 2, PciCommand.MEMORY | PciCommand.BUS_MASTER);
    expect(dev.barAddress(1)).toBe(0xc0001000);
    expect(dev.barAddress(2)).toBe(2 ** 32 + 0x8000);
    expect(dev.barAddress(0)).toBeUndefined(); // I/O decoding still off
    expect(changes).toBe(4);
    // Unknown command bits stay 0.
    t.write(4, 0, PciCfg.COMMAND, 2, 0xffff);
    expect(t.read(4, 0, PciCfg.COMMAND, 2)).toBe(0x0547);
  });

  it("capability list links from 0x34 with the status CAP_LIST bit; status errors are write-1-to-clear", () => {
    const t = setup();
    const dev = device();
    const a = dev.addCapability(0x09, new Uint8Array([14, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
    const b = dev.addCapability(
      0x11,
      new Uint8Array([0x03, 0x00, 0, 0, 0, 0, 0, 0, 0, 0]),
      new Uint8Array([0, 0xc0]),
    );
    t.host.attach(6, dev);
    expect(t.read(6, 0, PciCfg.STATUS, 2) & PciStatus.CAP_LIST).toBe(PciStatus.CAP_LIST);
    const ids: number[] = [];
    for (let p = t.read(6, 0, PciCfg.CAPABILITIES, 1), n = 0; p !== 0 && n < 48; n++) {
      ids.push(t.read(6, 0, p, 1));
      p = t.read(6, 0, p + 1, 1);
    }
    expect(ids).toEqual([0x09, 0x11]);
    expect(a).toBe(0x40);
    expect(b % 4).toBe(0);
    t.write(6, 0, b + 2, 2, 0xffff);
    expect(t.read(6, 0, b + 2, 2)).toBe(0xc003); // only the writable bits changed
    dev.bytes[PciCfg.STATUS + 1] = 0x20; // "received master abort"
    t.write(6, 0, PciCfg.STATUS, 2, 0x2000);
    expect(t.read(6, 0, PciCfg.STATUS, 2) & 0x2000).toBe(0);
  });

  it("refuses bad BAR declarations", () => {
    const d = new PciConfigSpace({ vendorId: 1, deviceId: 2, classCode: 0 });
    expect(() => d.setBar(0, { kind: "mem32", size: 0x1800 })).toThrow("power of two");
    expect(() => d.setBar(5, { kind: "mem64", size: 0x1000 })).toThrow("index out of range");
    expect(() => d.setBar(0, { kind: "io", size: 0x1000 })).toThrow("out of range for io");
  });

  it("fuzz: any config-port traffic never throws and never writes read-only identity", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(fc.nat(7), fc.constantFrom(1, 2, 4) as fc.Arbitrary<1 | 2 | 4>, fc.nat(), fc.boolean()),
          {
            maxLength: 80,
          },
        ),
        (ops) => {
          const t = setup();
          t.host.attach(1, device());
          for (const [off, size, v, isWrite] of ops) {
            if (isWrite) t.bus.write(0xcf8 + off, size, v);
            else t.bus.read(0xcf8 + off, size);
          }
          expect(t.read(1, 0, 0, 4)).toBe(0x10421af4);
          expect(t.read(0, 0, 0, 2)).toBe(0x8086);
        },
      ),
      { numRuns: 300 },
    );
  });
});
