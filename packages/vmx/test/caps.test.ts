import { describe, expect, it } from "vitest";
import { ctlValid, VmxCaps, VmxMsr } from "../src/caps";
import { EntryCtl, ExitCtl, Proc, Proc2 } from "../src/controls";
import { F, VMCS_FIELDS } from "../src/fields";

const caps = new VmxCaps();
const lo = (v: bigint) => Number(v & 0xffffffffn);
const hi = (v: bigint) => Number(v >> 32n);

describe("SDM Appendix A: VMX capability MSRs", () => {
  it("A.1 IA32_VMX_BASIC: revision id, 4 KiB region, WB memory type, INS/OUTS info, TRUE controls", () => {
    const b = caps.readMsr(VmxMsr.BASIC)!;
    expect(lo(b) & 0x80000000).toBe(0);
    expect(lo(b)).toBe(caps.config.revisionId);
    expect((b >> 32n) & 0x1fffn).toBe(4096n);
    expect((b >> 48n) & 1n).toBe(0n);
    expect((b >> 50n) & 0xfn).toBe(6n);
    expect((b >> 54n) & 1n).toBe(1n);
    expect((b >> 55n) & 1n).toBe(1n);
  });

  it("A.3-A.5: every allowed-0 bit is also allowed-1 (a must-1 control may be 1)", () => {
    for (const i of [0x481, 0x482, 0x483, 0x484, 0x48b, 0x48d, 0x48e, 0x48f, 0x490]) {
      const v = caps.readMsr(i)!;
      expect((lo(v) & ~hi(v)) >>> 0, i.toString(16)).toBe(0);
    }
  });

  it("A.2: the TRUE MSRs only relax default1 bits and keep the same allowed-1 bits", () => {
    const pairs = [
      [VmxMsr.PINBASED_CTLS, VmxMsr.TRUE_PINBASED_CTLS],
      [VmxMsr.PROCBASED_CTLS, VmxMsr.TRUE_PROCBASED_CTLS],
      [VmxMsr.EXIT_CTLS, VmxMsr.TRUE_EXIT_CTLS],
      [VmxMsr.ENTRY_CTLS, VmxMsr.TRUE_ENTRY_CTLS],
    ] as const;
    for (const [a, t] of pairs) {
      const va = caps.readMsr(a)!;
      const vt = caps.readMsr(t)!;
      expect(hi(va)).toBe(hi(vt));
      expect((lo(vt) & ~lo(va)) >>> 0).toBe(0);
    }
    expect(
      lo(caps.readMsr(VmxMsr.TRUE_PROCBASED_CTLS)!) & (Proc.CR3_LOAD_EXITING | Proc.CR3_STORE_EXITING),
    ).toBe(0);
    expect(lo(caps.readMsr(VmxMsr.PROCBASED_CTLS)!) & Proc.CR3_LOAD_EXITING).toBe(Proc.CR3_LOAD_EXITING);
    expect(lo(caps.readMsr(VmxMsr.TRUE_EXIT_CTLS)!) & ExitCtl.SAVE_DEBUG_CONTROLS).toBe(0);
    expect(lo(caps.readMsr(VmxMsr.TRUE_ENTRY_CTLS)!) & EntryCtl.LOAD_DEBUG_CONTROLS).toBe(0);
  });

  it("A.7/A.8: CR0 and CR4 fixed bits: FIXED0 is a subset of FIXED1; VMXE fixed to 1", () => {
    const c0f0 = caps.readMsr(VmxMsr.CR0_FIXED0)!;
    const c0f1 = caps.readMsr(VmxMsr.CR0_FIXED1)!;
    const c4f0 = caps.readMsr(VmxMsr.CR4_FIXED0)!;
    const c4f1 = caps.readMsr(VmxMsr.CR4_FIXED1)!;
    expect(c0f0 & ~c0f1).toBe(0n);
    expect(c4f0 & ~c4f1).toBe(0n);
    expect(c0f0).toBe(0x80000021n);
    expect(c4f0).toBe(0x2000n);
  });

  it("A.9: VMCS_ENUM reports the highest index of a supported field", () => {
    const idx = Number(caps.readMsr(VmxMsr.VMCS_ENUM)! >> 1n) & 0x1ff;
    const supported = VMCS_FIELDS.filter((d) => caps.fieldSupported(d.enc));
    expect(Math.max(...supported.map((d) => d.index))).toBe(idx);
    expect(supported.some((d) => d.index === idx)).toBe(true);
  });

  it("A.10: INVEPT/INVVPID reported with their types; A.11: VMFUNC bit 0 (EPTP switching)", () => {
    const c = caps.readMsr(VmxMsr.EPT_VPID_CAP)!;
    for (const b of [6n, 8n, 14n, 20n, 25n, 26n, 32n, 40n, 41n, 42n, 43n])
      expect((c >> b) & 1n, `bit ${b}`).toBe(1n);
    expect(caps.readMsr(VmxMsr.VMFUNC)).toBe(1n);
  });

  it("a model without EPT or VPID reports neither, nor their fields", () => {
    const small = new VmxCaps({ disabledProc2: Proc2.ENABLE_EPT | Proc2.ENABLE_VPID | Proc2.ENABLE_VMFUNC });
    expect(small.readMsr(VmxMsr.EPT_VPID_CAP)).toBe(0n);
    expect(small.readMsr(VmxMsr.VMFUNC)).toBeUndefined();
    expect(small.fieldSupported(F.EPT_POINTER)).toBe(false);
    expect(small.fieldSupported(F.VIRTUAL_PROCESSOR_ID)).toBe(false);
    expect(small.fieldSupported(F.GUEST_RIP)).toBe(true);
  });

  it("ctlValid applies allowed-0 and allowed-1", () => {
    expect(ctlValid({ must1: 0x16, may1: 0xff }, 0x16)).toBe(true);
    expect(ctlValid({ must1: 0x16, may1: 0xff }, 0x14)).toBe(false);
    expect(ctlValid({ must1: 0x16, may1: 0xff }, 0x116)).toBe(false);
  });

  it("MSRs outside the model do not exist (RDMSR would #GP)", () => {
    expect(caps.readMsr(0x492)).toBeUndefined();
    expect(caps.readMsr(0x493)).toBeUndefined();
    expect(caps.msrIndices().length).toBe(18);
  });
});
