// CPU snapshots: save -> restore -> save round trips, and restore validates hostile input (a
// snapshot is user-controlled data): it either loads or throws CpuStateError, never anything else.
import { describe, expect, it } from "vitest";
import { Cpu, CpuStateError, enterFlatLongMode, FlatMemory, IdentityTranslator } from "../src/index.js";

function cpu(): Cpu {
  return new Cpu({ memory: new FlatMemory(new Uint8Array(1 << 16)), translator: new IdentityTranslator() });
}

describe("CPU snapshots", () => {
  it("save -> restore -> save is the identity, including x87 and XMM state", () => {
    const a = cpu();
    enterFlatLongMode(a, 3);
    a.r[0] = 0x12345678;
    a.r[1] = -2;
    a.r[31] = 7;
    a.ripLo = 0x401000;
    a.xmm[5] = 0xdeadbeef;
    a.mxcsr = 0x1fa0;
    a.fpUnits.x87.cw = 0x27f;
    a.cr2Lo = 0x1000;
    const s1 = a.save();
    const b = cpu();
    b.restore(JSON.parse(JSON.stringify(s1)));
    expect(b.save()).toEqual(s1);
    expect(b.cpl).toBe(3);
    expect(b.codeMode).toBe(64);
    expect(b.mxcsr).toBe(0x1fa0);
  });

  it("restore rejects malformed snapshots with CpuStateError (fuzz, 3000 mutations)", () => {
    const base = cpu().save() as unknown as Record<string, unknown>;
    let seed = 99;
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    const junk = [null, undefined, -1, 1.5, "x", "0xzz", "0x1234567890abcdef1", {}, [], true, 2 ** 40];
    const keys = Object.keys(base);
    let rejected = 0;
    for (let t = 0; t < 3000; t++) {
      const s = JSON.parse(JSON.stringify(base)) as Record<string, unknown>;
      for (let m = 0; m <= rnd(3); m++) {
        const k = keys[rnd(keys.length)]!;
        const v = s[k];
        if (v && typeof v === "object" && !Array.isArray(v) && rnd(2) === 0) {
          const sub = v as Record<string, unknown>;
          const sk = Object.keys(sub);
          if (sk.length > 0) sub[sk[rnd(sk.length)]!] = junk[rnd(junk.length)];
        } else if (rnd(4) === 0) delete s[k];
        else s[k] = junk[rnd(junk.length)];
      }
      const c = cpu();
      const before = c.save();
      try {
        c.restore(s as never);
      } catch (e) {
        expect(e).toBeInstanceOf(CpuStateError);
        expect(c.save()).toEqual(before); // nothing was half-loaded
        rejected++;
      }
    }
    expect(rejected).toBeGreaterThan(2000);
  });
});
