/**
 * Guest-written VMCS contents are hostile input (STYLE.md): VM entry on any VMCS, and the exit that
 * follows, must end in an architected outcome and never throw. Longer runs: TSKVM_LONG=1.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { VMCS_FIELDS } from "../src/fields";
import { rig, validVmcs } from "./helpers";

const runs = process.env.TSKVM_LONG ? 20000 : 300;
const writable = VMCS_FIELDS.filter((d) => !d.high && !d.readOnly);

describe("VM entry on arbitrary VMCS contents", () => {
  it("VMLAUNCH never throws; it succeeds, VMfails, or takes an entry-failure exit", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.integer({ min: 0, max: writable.length - 1 }),
            fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
          ),
          { minLength: 1, maxLength: 8 },
        ),
        fc.integer({ min: 0, max: 0xffffff }),
        (writes, memNoise) => {
          const r = rig();
          validVmcs(r);
          // Hostile memory for bitmaps, MSR areas, link pointer, PDPTEs and the EPTP list.
          for (let i = 0; i < 64; i++)
            r.mem.bytes[(memNoise * 31 + i * 4099) % r.mem.bytes.length] = (memNoise >>> (i % 24)) & 0xff;
          for (const [i, value] of writes) {
            const d = writable[i]!;
            if (r.caps.fieldSupported(d.enc)) r.unit.vmwrite(BigInt(d.enc), () => value);
          }
          const out = r.unit.vmlaunch();
          expect(["entered", "done", "entry-failed", "abort"]).toContain(out.kind);
          if (out.kind === "entered") {
            const ex = r.unit.exit({ reason: 12 });
            expect(["exited", "abort"]).toContain(ex.kind);
          }
        },
      ),
      { numRuns: runs },
    );
  });
});
