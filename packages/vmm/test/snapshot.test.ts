import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Cmos } from "../src/devices/cmos.js";
import { I8042 } from "../src/devices/i8042.js";
import { Uart16550 } from "../src/devices/uart16550.js";
import { decodeSnapshot, encodeSnapshot, restoreLegacyDevices, SnapshotError } from "../src/snapshot.js";

function kindOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof SnapshotError) return e.detail.kind;
    throw e;
  }
  return "none";
}

function devicesState() {
  const uart = new Uart16550();
  uart.ioWrite(2, 1, 0xc1);
  uart.ioWrite(1, 1, 0x03);
  uart.receive(new Uint8Array([1, 2, 3]));
  const i8042 = new I8042();
  i8042.portDevices().data.ioWrite(0, 1, 0xf2);
  const cmos = new Cmos({ clock: () => 1_700_000_000_000 });
  cmos.ioWrite(0, 1, 0x40);
  cmos.ioWrite(1, 1, 0x99);
  return { uart: uart.save(), i8042: i8042.save(), cmos: cmos.save() };
}

describe("snapshot container: magic + version + payload + checksum", () => {
  it("save -> encode -> decode -> restore -> save round-trips the legacy devices", () => {
    const state = devicesState();
    const back = restoreLegacyDevices(decodeSnapshot(encodeSnapshot(state)), {
      cmos: { clock: () => 1_700_000_000_000 },
    });
    expect({ uart: back.uart.save(), i8042: back.i8042.save(), cmos: back.cmos.save() }).toEqual(state);
  });

  it("bad magic, version, size and checksum are each reported", () => {
    const good = encodeSnapshot(devicesState());
    const magic = good.slice();
    magic[0] = 0x58;
    expect(kindOf(() => decodeSnapshot(magic))).toBe("BadMagic");
    const version = good.slice();
    version[8] = 2;
    expect(() => decodeSnapshot(version)).toThrow("snapshot format version 2 is not supported");
    expect(kindOf(() => decodeSnapshot(good.subarray(0, good.length - 1)))).toBe("SizeMismatch");
    expect(kindOf(() => decodeSnapshot(good.subarray(0, 20)))).toBe("Truncated");
    const flipped = good.slice();
    flipped[20] = (flipped[20] ?? 0) ^ 1;
    expect(kindOf(() => decodeSnapshot(flipped))).toBe("BadChecksum");
  });

  it("a well-formed container with an invalid device state is BadPayload", () => {
    const s = devicesState();
    expect(
      kindOf(() =>
        restoreLegacyDevices(decodeSnapshot(encodeSnapshot({ ...s, uart: { ...s.uart, lcr: 999 } }))),
      ),
    ).toBe("BadPayload");
    expect(kindOf(() => restoreLegacyDevices(decodeSnapshot(encodeSnapshot({ uart: s.uart }))))).toBe(
      "BadPayload",
    );
    expect(kindOf(() => restoreLegacyDevices(decodeSnapshot(encodeSnapshot(null))))).toBe("BadPayload");
  });

  it("fuzz: corrupted snapshots give a SnapshotError, never another exception", () => {
    const good = encodeSnapshot(devicesState());
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(good.length - 1), fc.nat(255)), { maxLength: 8 }),
        fc.nat(good.length),
        (muts, cut) => {
          const b = good.slice(0, cut);
          for (const [at, v] of muts) if (at < b.length) b[at] = v;
          try {
            restoreLegacyDevices(decodeSnapshot(b));
          } catch (e) {
            if (!(e instanceof SnapshotError)) throw e;
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
