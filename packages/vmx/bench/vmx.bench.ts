/** VM entry + exit round trip and the hot intercept decisions. Run: npx vitest bench --run */
import { bench, describe } from "vitest";
import { Proc } from "../src/controls";
import { F } from "../src/fields";
import { ioExit, movToCrExit, msrExit } from "../src/intercepts";
import { rig, validVmcs } from "../test/helpers";

const r = rig();
validVmcs(r);
const v = r.unit.vmcs;
v.set32(
  F.CPU_BASED_VM_EXEC_CONTROL,
  v.get32(F.CPU_BASED_VM_EXEC_CONTROL) | Proc.USE_IO_BITMAPS | Proc.USE_MSR_BITMAPS,
);
v.set64(F.IO_BITMAP_A, 0x10000n);
v.set64(F.IO_BITMAP_B, 0x11000n);
v.set64(F.MSR_BITMAP, 0x12000n);
r.unit.vmlaunch();
r.unit.exit({ reason: 12 });

describe("vmx", () => {
  bench("VMRESUME + VM exit (HLT) round trip", () => {
    r.unit.vmresume();
    r.unit.exit({ reason: 12 });
  });
  bench("ioExit decision (bitmap lookup)", () => {
    ioExit(v, r.mem, 0x3f8, 1);
  });
  bench("msrExit decision (bitmap lookup)", () => {
    msrExit(v, r.mem, 0xc0000080, true);
  });
  bench("movToCrExit decision (CR0 mask/shadow)", () => {
    movToCrExit(v, 0, 0x80000031n);
  });
});
