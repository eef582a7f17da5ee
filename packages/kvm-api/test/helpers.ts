import { DeterministicClock, nsToTsc, tscToNs } from "../src/clock.js";
import { Lapic } from "../src/devices/lapic.js";
import { KvmError } from "../src/errors.js";
import { Irqchip } from "../src/irqchip.js";

/** A 1 GHz TSC makes TSC ticks equal nanoseconds in tests. */
export const TEST_TSC_KHZ = 1_000_000;

export function makeChip(n: number) {
  const clock = new DeterministicClock();
  const kicks: number[] = [];
  const chip = new Irqchip(clock, { kick: (i) => kicks.push(i) });
  for (let i = 0; i < n; i++) {
    chip.addLapic(
      new Lapic(i, {
        bus: chip,
        clock,
        tscAt: (ns) => nsToTsc(ns, TEST_TSC_KHZ),
        nsAtTsc: (t) => tscToNs(t, TEST_TSC_KHZ),
        eoiBroadcast: (v) => chip.eoiBroadcast(v),
        kick: () => kicks.push(i),
        tscDeadline: true,
        x2apic: true,
      }),
    );
  }
  return { chip, clock, kicks, lapic: (i: number) => chip.lapics[i]! };
}

/** Linux setup_local_APIC() essentials: flat logical mode, LDR bit per CPU, SVR enabled with 0xff. */
export function linuxApicSetup(l: Lapic, cpu: number): void {
  l.mmioWrite(0xe0, 4, 0xffffffff); // DFR flat
  l.mmioWrite(0xd0, 4, (1 << cpu) << 24); // LDR
  l.mmioWrite(0x80, 4, 0); // TPR
  l.mmioWrite(0xf0, 4, 0x1ff); // SVR: enabled, spurious vector 0xff
  l.mmioWrite(0x370, 4, 0xfe); // LVTERR: ERROR_APIC_VECTOR
  if (cpu === 0) {
    l.mmioWrite(0x350, 4, 0x700); // LINT0 ExtINT
    l.mmioWrite(0x360, 4, 0x400); // LINT1 NMI
  }
}

export function errOf(f: () => unknown): KvmError {
  try {
    f();
  } catch (e) {
    if (e instanceof KvmError) return e;
    throw e;
  }
  throw new Error("expected a KvmError");
}
