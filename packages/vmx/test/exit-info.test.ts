import { describe, expect, it } from "vitest";
import {
  DescTableInsn,
  descriptorTableInfo,
  displacementQualification,
  memOperandInfo,
  rdrandInfo,
  vmxInstructionInfo,
} from "../src/exit-info";

describe("SDM 28.2.5 VM-exit instruction information", () => {
  it("VMPTRLD [rax+rbx*8] in 64-bit mode, DS", () => {
    const info = vmxInstructionInfo({ scale: 3, addrSize: 2, seg: 3, index: 3, base: 0 });
    expect(info).toBe(3 | (2 << 7) | (3 << 15) | (3 << 18) | (0 << 23));
  });
  it("no index and no base set the invalid bits 22 and 27", () => {
    expect(memOperandInfo({ scale: 0, addrSize: 1, seg: 3, index: null, base: null })).toBe(
      (1 << 7) | (3 << 15) | (1 << 22) | (1 << 27),
    );
  });
  it("VMREAD rcx, rdx: register form, reg1 in 6:3, reg2 in 31:28", () => {
    expect(vmxInstructionInfo({ reg1: 1 }, 2)).toBe(0x20000408);
  });
  it("LIDT with 32-bit operand size; LTR ax", () => {
    const m = { scale: 0, addrSize: 1, seg: 3, index: null, base: 6 };
    expect(descriptorTableInfo(DescTableInsn.LIDT, m, true) >>> 28).toBe(3);
    expect((descriptorTableInfo(DescTableInsn.LIDT, m, true) >>> 11) & 1).toBe(1);
    expect(descriptorTableInfo(DescTableInsn.LTR, { reg1: 0 })).toBe(0x30000400);
  });
  it("RDRAND r32 and displacement qualifications", () => {
    expect(rdrandInfo(5, 1)).toBe((5 << 3) | (1 << 11));
    expect(displacementQualification(-8)).toBe(0xfffffffffffffff8n);
    expect(displacementQualification(0x10)).toBe(0x10n);
  });
});
