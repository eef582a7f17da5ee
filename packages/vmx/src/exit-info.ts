/**
 * VM-exit instruction information (SDM Vol. 3C 28.2.5) and the exit qualification of instructions
 * with a memory operand (28.2.1: "the displacement field of the instruction's memory operand",
 * sign-extended). The CPU builds these from its decoded instruction when it performs an
 * instruction VM exit.
 */

/** A decoded memory operand, in the register numbering of the SDM (0 = RAX/ES ... 15 = R15). */
export interface MemOperandInfo {
  /** log2 of the index scale: 0, 1, 2, 3. */
  scale: number;
  /** Address size: 0 = 16-bit, 1 = 32-bit, 2 = 64-bit. */
  addrSize: number;
  /** Segment register: 0 ES, 1 CS, 2 SS, 3 DS, 4 FS, 5 GS. */
  seg: number;
  /** Index register or null. */
  index: number | null;
  /** Base register or null. */
  base: number | null;
}

/** The fields shared by every instruction-information layout (bits 1:0, 9:7, 17:15, 27:18). */
export function memOperandInfo(m: MemOperandInfo): number {
  let v = (m.scale & 3) | ((m.addrSize & 7) << 7) | ((m.seg & 7) << 15);
  v |= m.index === null ? 1 << 22 : (m.index & 0xf) << 18;
  v |= m.base === null ? 1 << 27 : (m.base & 0xf) << 23;
  return v >>> 0;
}

/**
 * VMCLEAR, VMPTRLD, VMPTRST, VMXON, VMREAD, VMWRITE, INVEPT, INVVPID, INVPCID (SDM Table 28-13/
 * 28-14): a memory operand or (VMREAD/VMWRITE only) a register `reg1` (bit 10 = 1), and `reg2`
 * (bits 31:28): VMREAD/VMWRITE's other register, INVEPT/INVVPID/INVPCID's type register.
 */
export function vmxInstructionInfo(operand: MemOperandInfo | { reg1: number }, reg2 = 0): number {
  const low = "reg1" in operand ? (1 << 10) | ((operand.reg1 & 0xf) << 3) : memOperandInfo(operand);
  return (low | ((reg2 & 0xf) << 28)) >>> 0;
}

/** Descriptor-table instruction identities (SDM Table 28-11/28-12, bits 29:28). */
export const DescTableInsn = {
  SGDT: 0,
  SIDT: 1,
  LGDT: 2,
  LIDT: 3,
  SLDT: 0,
  STR: 1,
  LLDT: 2,
  LTR: 3,
} as const;

/**
 * LGDT/LIDT/SGDT/SIDT and LLDT/LTR/SLDT/STR instruction information: operand size (bit 11: 0 =
 * 16-bit, 1 = 32-bit) for the GDTR/IDTR group, the operand (register in bits 6:3 with bit 10 = 1
 * for the LDTR/TR group), and the instruction identity in bits 29:28.
 */
export function descriptorTableInfo(
  identity: number,
  operand: MemOperandInfo | { reg1: number },
  opSize32 = false,
): number {
  const low = "reg1" in operand ? (1 << 10) | ((operand.reg1 & 0xf) << 3) : memOperandInfo(operand);
  return (low | (opSize32 ? 1 << 11 : 0) | ((identity & 3) << 28)) >>> 0;
}

/** RDRAND/RDSEED: destination register (bits 6:3) and operand size (12:11: 0 = 16, 1 = 32, 2 = 64). */
export function rdrandInfo(reg: number, opSizeCode: number): number {
  return (((reg & 0xf) << 3) | ((opSizeCode & 3) << 11)) >>> 0;
}

/** Exit qualification for an instruction with a memory operand: its displacement, sign-extended. */
export function displacementQualification(disp: number): bigint {
  return BigInt.asUintN(64, BigInt(disp | 0));
}
