// The per-form and per-op data the executor and the CPU difftest read: operand kinds, sizes and
// access, immediates, and RFLAGS masks, checked on instructions whose SDM pages say what they are.
import { describe, expect, it } from "vitest";
import {
  DecodeStatus,
  decode,
  FORM_FLAGS_READ,
  FORM_FLAGS_WRITTEN,
  formOperands,
  Insn,
  OP_FLAGS_UNDEFINED,
  Op,
  OperandAccess,
  OpKind,
  OpSize,
  operandBytes,
  operandCount,
} from "../src/index.js";

const CF = 1 << 0;
const PF = 1 << 2;
const AF = 1 << 4;
const ZF = 1 << 6;
const SF = 1 << 7;
const OF = 1 << 11;

function dec(hex: string, mode: 16 | 32 | 64 = 64): Insn {
  const insn = new Insn();
  const bytes = Uint8Array.from(hex.split(" "), (h) => Number.parseInt(h, 16));
  expect(decode(bytes, 0, mode, insn)).toBe(DecodeStatus.Ok);
  return insn;
}

describe("operand specs per form", () => {
  it("ADD r/m32, r32: destination E read-write, source G read", () => {
    const i = dec("01 d8");
    expect(formOperands(i.form)).toEqual([
      { kind: OpKind.E, size: OpSize.v, access: OperandAccess.ReadWrite, reg: 0 },
      { kind: OpKind.G, size: OpSize.v, access: OperandAccess.Read, reg: 0 },
    ]);
    expect(operandBytes(OpSize.v, i)).toBe(4);
    expect(operandBytes(OpSize.v, dec("48 01 d8"))).toBe(8);
    expect(operandBytes(OpSize.v, dec("66 01 d8"))).toBe(2);
  });
  it("CMP writes no operand; MOV's destination is write-only; LEA's memory is not accessed as data", () => {
    expect(formOperands(dec("39 d8").form)[0]!.access).toBe(OperandAccess.Read);
    expect(formOperands(dec("89 d8").form)[0]!.access).toBe(OperandAccess.Write);
    expect(formOperands(dec("8d 04 40").form)[1]).toEqual({
      kind: OpKind.M,
      size: OpSize.none,
      access: OperandAccess.Read,
      reg: 0,
    });
  });
  it("fixed registers carry their number: IN AL, DX", () => {
    expect(formOperands(dec("ec").form)).toEqual([
      { kind: OpKind.Reg, size: OpSize.b, access: OperandAccess.Write, reg: 0 },
      { kind: OpKind.Reg, size: OpSize.w, access: OperandAccess.Read, reg: 2 },
    ]);
  });
  it("PUSH defaults to 64 bits in 64-bit mode (d64), 66 makes it 16", () => {
    expect(dec("50").opSize).toBe(8);
    expect(dec("66 50").opSize).toBe(2);
    expect(dec("50", 32).opSize).toBe(4);
  });
  it("near branches are 64-bit in 64-bit mode whatever 66 says (Intel, f64)", () => {
    const j = dec("66 e9 10 00 00 00");
    expect(j.opSize).toBe(8);
    expect(j.imm).toBe(0x10);
    expect(j.length).toBe(6);
  });
  it("VEX three-operand forms read VEX.vvvv", () => {
    const i = dec("c4 e2 70 f2 c2"); // andn eax, ecx, edx
    expect(i.op).toBe(Op.ANDN);
    expect(i.reg).toBe(0);
    expect(i.vvvv).toBe(1);
    expect(i.rm).toBe(2);
    expect(operandCount(i.form)).toBe(3);
  });
  it("moffs and far pointers", () => {
    const m = dec("a1 78 56 34 12", 32);
    expect(formOperands(m.form)[1]!.kind).toBe(OpKind.O);
    expect(m.imm).toBe(0x12345678);
    const f = dec("ea 78 56 34 12 08 00", 32);
    expect(f.imm).toBe(0x12345678);
    expect(f.imm2).toBe(8);
  });
});

describe("RFLAGS masks", () => {
  it("ADD writes OSZAPC and reads nothing; ADC reads CF", () => {
    expect(FORM_FLAGS_WRITTEN[dec("01 d8").form]).toBe(OF | SF | ZF | AF | PF | CF);
    expect(FORM_FLAGS_READ[dec("01 d8").form]).toBe(0);
    expect(FORM_FLAGS_READ[dec("11 d8").form]).toBe(CF);
  });
  it("SDM undefined flags per op: MUL leaves SF ZF AF PF, AND leaves AF, DIV leaves all six", () => {
    expect(OP_FLAGS_UNDEFINED[Op.MUL]).toBe(SF | ZF | AF | PF);
    expect(OP_FLAGS_UNDEFINED[Op.AND]).toBe(AF);
    expect(OP_FLAGS_UNDEFINED[Op.DIV]).toBe(OF | SF | ZF | AF | PF | CF);
    expect(OP_FLAGS_UNDEFINED[Op.MOV]).toBe(0);
  });
  it("conditional families read the flags of their condition", () => {
    expect(FORM_FLAGS_READ[dec("0f 4c c1").form]).toBe(SF | OF); // CMOVL
    expect(FORM_FLAGS_READ[dec("76 00").form]).toBe(CF | ZF); // JBE
    expect(FORM_FLAGS_READ[dec("0f 9f c0").form]).toBe(ZF | SF | OF); // SETG
  });
});
