import { describe, expect, it } from "vitest";
import { VmxCaps } from "../src/caps";
import { VmError } from "../src/controls";
import { F, Seg } from "../src/fields";
import { INVALID_VMCS_POINTER, VmxUnit } from "../src/instructions";
import { FlatMemory, rig, TestCpu, VMCS_PA, VMXON_PA } from "./helpers";

const CF = 1n;
const ZF = 0x40n;
const flags = (cpu: TestCpu) => cpu.rflags & 0x8d5n;

function fresh() {
  const caps = new VmxCaps();
  const mem = new FlatMemory();
  const cpu = new TestCpu();
  const unit = new VmxUnit({ caps, cpu, mem });
  mem.setU32(VMXON_PA, caps.config.revisionId);
  mem.setU32(VMCS_PA, caps.config.revisionId);
  return { caps, mem, cpu, unit };
}
const at = (pa: number) => () => BigInt(pa);

describe("SDM 31.3 VMXON", () => {
  it("#UD when CR4.VMXE = 0", () => {
    const { cpu, unit } = fresh();
    cpu.cr4 = 0x20n;
    expect(unit.vmxon(at(VMXON_PA))).toEqual({ kind: "fault", vector: 6, errorCode: null });
  });
  it("#UD in real mode, virtual-8086 mode and compatibility mode", () => {
    for (const bad of [
      (c: TestCpu) => {
        c.cr0 = 0x30n;
      },
      (c: TestCpu) => {
        c.rflags |= 0x20000n;
      },
      (c: TestCpu) => {
        c.setSegment(Seg.CS, { ...c.getSegment(Seg.CS), ar: 0xc09b });
      },
    ]) {
      const { cpu, unit } = fresh();
      bad(cpu);
      expect(unit.vmxon(at(VMXON_PA)).kind).toBe("fault");
    }
  });
  it("#GP(0) at CPL > 0", () => {
    const { cpu, unit } = fresh();
    cpu.setSegment(Seg.CS, { ...cpu.getSegment(Seg.CS), selector: 0x0b });
    expect(unit.vmxon(at(VMXON_PA))).toEqual({ kind: "fault", vector: 13, errorCode: 0 });
  });
  it("#GP(0) when IA32_FEATURE_CONTROL is unlocked or VMX outside SMX is disabled", () => {
    for (const fc of [4n, 1n, 0n]) {
      const { cpu, unit } = fresh();
      cpu.msrs.set(0x3a, fc);
      expect(unit.vmxon(at(VMXON_PA)), `fc=${fc}`).toEqual({ kind: "fault", vector: 13, errorCode: 0 });
    }
  });
  it("#GP(0) when CR0 violates IA32_VMX_CR0_FIXED0 (NE = 0)", () => {
    const { cpu, unit } = fresh();
    cpu.cr0 = 0x80000011n;
    expect(unit.vmxon(at(VMXON_PA)).kind).toBe("fault");
  });
  it("the operand is not read before the privilege checks", () => {
    const { cpu, unit } = fresh();
    cpu.setSegment(Seg.CS, { ...cpu.getSegment(Seg.CS), selector: 0x0b });
    let read = false;
    unit.vmxon(() => {
      read = true;
      return 0n;
    });
    expect(read).toBe(false);
  });
  it("VMfailInvalid for a misaligned pointer, one beyond MAXPHYADDR, or a wrong revision id", () => {
    for (const pa of [VMXON_PA + 8, 1 << 40]) {
      const { cpu, unit } = fresh();
      unit.vmxon(at(pa));
      expect(flags(cpu)).toBe(CF);
      expect(unit.inVmxOperation).toBe(false);
    }
    const { cpu, unit, mem } = fresh();
    mem.setU32(VMXON_PA, 0x80000000 | unit.caps.config.revisionId);
    unit.vmxon(at(VMXON_PA));
    expect(flags(cpu)).toBe(CF);
  });
  it("VMsucceed enters VMX operation with no current VMCS; a second VMXON fails with error 15 semantics", () => {
    const { cpu, unit } = fresh();
    cpu.rflags |= 0x8d5n;
    expect(unit.vmxon(at(VMXON_PA))).toEqual({ kind: "done" });
    expect(flags(cpu)).toBe(0n);
    expect(unit.inVmxOperation).toBe(true);
    unit.vmxon(at(VMXON_PA));
    expect(flags(cpu)).toBe(CF); // VMfail with no current VMCS is VMfailInvalid
  });
  it("VMXON in root operation with a current VMCS: VMfailValid(15)", () => {
    const r = rig();
    r.unit.vmxon(at(VMXON_PA));
    expect(flags(r.cpu)).toBe(ZF);
    expect(r.unit.vmcs.get32(F.VM_INSTRUCTION_ERROR)).toBe(VmError.VMXON_IN_ROOT);
  });
});

describe("SDM 31.3 VMCLEAR, VMPTRLD, VMPTRST", () => {
  it("#UD outside VMX operation", () => {
    const { unit } = fresh();
    expect(unit.vmptrld(at(VMCS_PA)).kind).toBe("fault");
    expect(unit.vmclear(at(VMCS_PA)).kind).toBe("fault");
    expect(unit.vmptrst(() => {}).kind).toBe("fault");
    expect(unit.vmread(0n, () => {}).kind).toBe("fault");
    expect(unit.vmlaunch().kind).toBe("fault");
    expect(unit.vmxoff().kind).toBe("fault");
    expect(unit.vmcall().kind).toBe("fault");
  });
  it("VMPTRLD errors 9 (address), 10 (VMXON pointer), 11 (revision id)", () => {
    const r = rig();
    r.unit.vmptrld(at(VMCS_PA + 0x10));
    expect(r.unit.vmcs.get32(F.VM_INSTRUCTION_ERROR)).toBe(VmError.VMPTRLD_INVALID_ADDRESS);
    r.unit.vmptrld(at(VMXON_PA));
    expect(r.unit.vmcs.get32(F.VM_INSTRUCTION_ERROR)).toBe(VmError.VMPTRLD_VMXON_POINTER);
    r.mem.setU32(0x4000, 0x1234);
    r.unit.vmptrld(at(0x4000));
    expect(r.unit.vmcs.get32(F.VM_INSTRUCTION_ERROR)).toBe(VmError.VMPTRLD_BAD_REVISION);
    r.mem.setU32(0x4000, 0x80000000 | r.caps.config.revisionId); // shadow VMCS without shadowing
    r.unit.vmptrld(at(0x4000));
    expect(r.unit.vmcs.get32(F.VM_INSTRUCTION_ERROR)).toBe(VmError.VMPTRLD_BAD_REVISION);
    expect(flags(r.cpu)).toBe(ZF);
  });
  it("VMCLEAR errors 2 and 3; VMfailInvalid when there is no current VMCS", () => {
    const r = rig();
    r.unit.vmclear(at(0x4001));
    expect(r.unit.vmcs.get32(F.VM_INSTRUCTION_ERROR)).toBe(VmError.VMCLEAR_INVALID_ADDRESS);
    r.unit.vmclear(at(VMXON_PA));
    expect(r.unit.vmcs.get32(F.VM_INSTRUCTION_ERROR)).toBe(VmError.VMCLEAR_VMXON_POINTER);
    r.unit.vmclear(at(VMCS_PA));
    expect(flags(r.cpu)).toBe(0n);
    expect(r.unit.currentPointer).toBe(-1);
    r.unit.vmclear(at(0x4001));
    expect(flags(r.cpu)).toBe(CF);
  });
  it("VMPTRST stores the current pointer, or all ones when there is none", () => {
    const r = rig();
    let got = 0n;
    r.unit.vmptrst((v) => {
      got = v;
    });
    expect(got).toBe(BigInt(VMCS_PA));
    r.unit.vmclear(at(VMCS_PA));
    r.unit.vmptrst((v) => {
      got = v;
    });
    expect(got).toBe(INVALID_VMCS_POINTER);
  });
  it("VMCLEAR writes the cached VMCS to its region; VMPTRLD reads it back", () => {
    const r = rig();
    r.unit.vmwrite(BigInt(F.GUEST_RIP), () => 0x1234_5678_9abcn);
    r.unit.vmclear(at(VMCS_PA));
    r.mem.setU32(0x5000, r.caps.config.revisionId);
    r.unit.vmptrld(at(0x5000));
    let v = 0n;
    r.unit.vmread(BigInt(F.GUEST_RIP), (x) => {
      v = x;
    });
    expect(v).toBe(0n);
    r.unit.vmptrld(at(VMCS_PA));
    r.unit.vmread(BigInt(F.GUEST_RIP), (x) => {
      v = x;
    });
    expect(v).toBe(0x1234_5678_9abcn);
  });
});

describe("SDM 31.3 VMREAD/VMWRITE", () => {
  it("VMfailInvalid without a current VMCS", () => {
    const r = rig();
    r.unit.vmclear(at(VMCS_PA));
    r.unit.vmread(BigInt(F.GUEST_RIP), () => {});
    expect(flags(r.cpu)).toBe(CF);
    r.unit.vmwrite(BigInt(F.GUEST_RIP), () => 0n);
    expect(flags(r.cpu)).toBe(CF);
  });
  it("error 12 for unsupported components: no such encoding, reserved bits, a feature not implemented", () => {
    const r = rig();
    for (const enc of [
      0x482cn,
      BigInt(F.GUEST_RIP | 0x8000),
      BigInt(F.GUEST_RIP) | (1n << 32n),
      BigInt(F.GUEST_RIP | 1),
      BigInt(F.POSTED_INTR_NV),
      BigInt(F.GUEST_IA32_PERF_GLOBAL_CTRL),
    ]) {
      r.unit.vmread(enc, () => {});
      expect(flags(r.cpu), enc.toString(16)).toBe(ZF);
      expect(r.unit.vmcs.get32(F.VM_INSTRUCTION_ERROR)).toBe(VmError.UNSUPPORTED_COMPONENT);
      r.unit.vmcs.set32(F.VM_INSTRUCTION_ERROR, 0);
      r.unit.vmwrite(enc, () => 0n);
      expect(r.unit.vmcs.get32(F.VM_INSTRUCTION_ERROR)).toBe(VmError.UNSUPPORTED_COMPONENT);
    }
  });
  it("error 13 for VMWRITE to every read-only exit-information field; VMREAD of them succeeds", () => {
    const r = rig();
    for (const enc of [
      F.VM_EXIT_REASON,
      F.EXIT_QUALIFICATION,
      F.GUEST_PHYSICAL_ADDRESS,
      F.GUEST_PHYSICAL_ADDRESS | 1,
      F.VM_INSTRUCTION_ERROR,
      F.IO_RIP,
      F.GUEST_LINEAR_ADDRESS,
      F.VMX_INSTRUCTION_INFO,
    ]) {
      r.unit.vmwrite(BigInt(enc), () => 1n);
      expect(r.unit.vmcs.get32(F.VM_INSTRUCTION_ERROR), enc.toString(16)).toBe(VmError.VMWRITE_READ_ONLY);
      r.unit.vmread(BigInt(enc), () => {});
      expect(flags(r.cpu)).toBe(0n);
    }
  });
  it("outside 64-bit mode operands are 32 bits: the field's high bits are cleared on write and not read", () => {
    const r = rig();
    r.unit.vmwrite(BigInt(F.TSC_OFFSET), () => 0x1122334455667788n);
    r.cpu.efer = 0x801n; // protected mode, no LMA
    r.cpu.setSegment(Seg.CS, { ...r.cpu.getSegment(Seg.CS), ar: 0xc09b });
    let v = 0n;
    r.unit.vmread(BigInt(F.TSC_OFFSET), (x) => {
      v = x;
    });
    expect(v).toBe(0x55667788n);
    r.unit.vmwrite(BigInt(F.TSC_OFFSET), () => 0xaabbccddn);
    expect(r.unit.vmcs.get64(F.TSC_OFFSET)).toBe(0xaabbccddn);
    r.unit.vmread(BigInt(F.TSC_OFFSET | 1), (x) => {
      v = x;
    });
    expect(v).toBe(0n);
  });
  it("#GP(0) at CPL 3", () => {
    const r = rig();
    r.cpu.setSegment(Seg.CS, { ...r.cpu.getSegment(Seg.CS), selector: 0x0b });
    expect(r.unit.vmread(BigInt(F.GUEST_RIP), () => {})).toEqual({ kind: "fault", vector: 13, errorCode: 0 });
  });
});

describe("SDM 31.3 VMLAUNCH/VMRESUME pre-checks, VMCALL, VMXOFF", () => {
  it("VMfailInvalid with no current VMCS", () => {
    const r = rig();
    r.unit.vmclear(at(VMCS_PA));
    r.unit.vmlaunch();
    expect(flags(r.cpu)).toBe(CF);
  });
  it("error 26 under MOV-SS blocking, 5 for VMRESUME of a clear VMCS", () => {
    const r = rig();
    r.cpu.interruptibility = 2;
    r.unit.vmlaunch();
    expect(r.unit.vmcs.get32(F.VM_INSTRUCTION_ERROR)).toBe(VmError.ENTRY_MOV_SS_BLOCKING);
    r.cpu.interruptibility = 0;
    r.unit.vmresume();
    expect(r.unit.vmcs.get32(F.VM_INSTRUCTION_ERROR)).toBe(VmError.VMRESUME_NONLAUNCHED);
  });
  it("VMCALL in root operation: VMfail(1); outside VMX operation: #UD", () => {
    const r = rig();
    r.unit.vmcall();
    expect(r.unit.vmcs.get32(F.VM_INSTRUCTION_ERROR)).toBe(VmError.VMCALL_IN_ROOT);
  });
  it("VMXOFF leaves VMX operation and writes the current VMCS back", () => {
    const r = rig();
    r.unit.vmwrite(BigInt(F.GUEST_RSP), () => 0x77n);
    expect(r.unit.vmxoff()).toEqual({ kind: "done" });
    expect(r.unit.inVmxOperation).toBe(false);
    expect(r.mem.bytes.subarray(VMCS_PA, VMCS_PA + 4096).some((b, i) => i >= 16 && b === 0x77)).toBe(true);
  });
});

describe("SDM 31.3 INVEPT/INVVPID", () => {
  it("single-context INVEPT with an invalid EPTP and unsupported types fail with error 28", () => {
    const r = rig();
    r.unit.invept(1n, () => [0x5000n, 0n]);
    expect(r.unit.vmcs.get32(F.VM_INSTRUCTION_ERROR)).toBe(VmError.INVALID_INVEPT_INVVPID);
    r.unit.vmcs.set32(F.VM_INSTRUCTION_ERROR, 0);
    r.unit.invept(3n, () => [0n, 0n]);
    expect(r.unit.vmcs.get32(F.VM_INSTRUCTION_ERROR)).toBe(VmError.INVALID_INVEPT_INVVPID);
  });
  it("INVEPT/INVVPID reach the TLB hooks", () => {
    const caps = new VmxCaps();
    const mem = new FlatMemory();
    const cpu = new TestCpu();
    const calls: string[] = [];
    const unit = new VmxUnit({
      caps,
      cpu,
      mem,
      tlb: { invept: (e) => calls.push(`ept ${e}`), invvpid: (t, v, l) => calls.push(`vpid ${t} ${v} ${l}`) },
    });
    mem.setU32(VMXON_PA, caps.config.revisionId);
    unit.vmxon(at(VMXON_PA));
    unit.invept(1n, () => [0x501en, 0n]);
    unit.invept(2n, () => [0n, 0n]);
    unit.invvpid(0n, () => [1n, 0xffff800000001000n]);
    unit.invvpid(2n, () => [0n, 0n]);
    expect(calls).toEqual(["ept 20510", "ept null", `vpid 0 1 ${0xffff800000001000n}`, "vpid 2 0 0"]);
  });
  it("INVVPID: VPID 0, reserved descriptor bits and non-canonical addresses fail with error 28", () => {
    const r = rig();
    for (const [t, d] of [
      [1n, [0n, 0n]],
      [0n, [1n | (1n << 20n), 0n]],
      [0n, [1n, 0x0000800000000000n]],
      [4n, [1n, 0n]],
    ] as const) {
      r.unit.vmcs.set32(F.VM_INSTRUCTION_ERROR, 0);
      r.unit.invvpid(t, () => [d[0], d[1]]);
      expect(r.unit.vmcs.get32(F.VM_INSTRUCTION_ERROR)).toBe(VmError.INVALID_INVEPT_INVVPID);
    }
  });
});

describe("save/restore", () => {
  it("save -> restore -> save round-trips, and the restored unit keeps working", () => {
    const r = rig();
    r.unit.vmwrite(BigInt(F.GUEST_RIP), () => 0xabcdn);
    const s1 = r.unit.save();
    const u = VmxUnit.restore({ caps: r.caps, cpu: r.cpu, mem: r.mem }, JSON.parse(JSON.stringify(s1)));
    expect(u.save()).toEqual(s1);
    let v = 0n;
    u.vmread(BigInt(F.GUEST_RIP), (x) => {
      v = x;
    });
    expect(v).toBe(0xabcdn);
  });
  it("rejects malformed states by field", () => {
    const r = rig();
    const s = r.unit.save();
    const deps = { caps: r.caps, cpu: r.cpu, mem: r.mem };
    expect(() => VmxUnit.restore(deps, { ...s, vmcs: "00" })).toThrow(/vmcs/);
    expect(() => VmxUnit.restore(deps, { ...s, currentPointer: 1.5 })).toThrow(/currentPointer/);
    expect(() => VmxUnit.restore(deps, { ...s, nonRoot: true, currentPointer: -1 })).toThrow(/nonRoot/);
    expect(() => VmxUnit.restore(deps, { ...s, aborted: "no" as unknown as boolean })).toThrow(/aborted/);
  });
});
