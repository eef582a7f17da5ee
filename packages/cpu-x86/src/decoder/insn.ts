/**
 * The decoded instruction: the contract between the decoder (which fills it) and the executor,
 * formatter and JIT (which read it). One reusable, monomorphic object; `decode` overwrites every
 * field, so the hot path allocates nothing. Fields may be added; none is renamed or re-meant
 * without updating every reader.
 *
 * Registers are numbered as the SDM's encodings with REX/VEX extension folded in: 0..15 =
 * rAX, rCX, rDX, rBX, rSP, rBP, rSI, rDI, r8..r15 (for byte operands without REX, 4..7 mean
 * AH, CH, DH, BH; see `byteRegsHigh`). Segment numbers: ES=0 CS=1 SS=2 DS=3 FS=4 GS=5.
 */

/** Why a decode failed; `DecodeStatus.Ok` when it did not. */
export const DecodeStatus = {
  Ok: 0,
  /** Not a valid instruction in this mode (#UD); `length` is how far decoding got. */
  Invalid: 1,
  /** More than 15 bytes (#GP(0) on real hardware). */
  TooLong: 2,
  /** The buffer ended before the instruction did: fetch more bytes (page crossing) and retry. */
  Truncated: 3,
} as const;
export type DecodeStatus = (typeof DecodeStatus)[keyof typeof DecodeStatus];

/** Prefix bits in `Insn.prefixes`. */
export const Prefix = {
  LOCK: 1 << 0,
  REP: 1 << 1, // F3 (REP/REPE) when not consumed as a mandatory prefix
  REPNE: 1 << 2, // F2 when not consumed as a mandatory prefix
  OPSIZE: 1 << 3, // 66 present (whether or not consumed as mandatory)
  ADDRSIZE: 1 << 4, // 67 present
  REX: 1 << 5, // a REX prefix that took effect (directly before the opcode, 64-bit mode)
  VEX: 1 << 6,
  SEG: 1 << 7, // a segment override took effect (`seg` holds the last one; in 64-bit mode only FS/GS count)
} as const;

/** No register in a `base`/`index` slot. */
export const NO_REG = -1;
/** No segment override. */
export const NO_SEG = -1;

export class Insn {
  /** Status of the last decode into this record. */
  status: DecodeStatus = DecodeStatus.Invalid;
  /** Generated operation id (`Op.ADD`, ...); 0 = invalid. One id per mnemonic. */
  op = 0;
  /** Index of the encoding record (form) that matched; the formatter and operand kinds use it. */
  form = 0;
  /** Bytes consumed, 1..15. */
  length = 0;
  /** Decoding mode: 16, 32 or 64. */
  mode: 16 | 32 | 64 = 64;
  /** Effective operand size in bytes for "v"-sized operands (2, 4 or 8). */
  opSize = 4;
  /** Effective address size in bytes (2, 4 or 8). */
  addrSize = 8;
  /** `Prefix` bits. */
  prefixes = 0;
  /** REX bits W R X B in bits 3..0 (0 when no REX took effect); VEX.W/R/X/B land here too. */
  rex = 0;
  /** Last segment override (0..5) or NO_SEG. In 64-bit mode only FS/GS overrides count (ES/CS/SS/DS prefixes are ignored, SDM Vol. 1 3.3.7.1), so this is 4, 5 or NO_SEG there. */
  seg = NO_SEG;
  /** The opcode byte within its map, and the map: 0 one-byte, 1 = 0F, 2 = 0F38, 3 = 0F3A. */
  opcode = 0;
  map = 0;
  /** ModRM present, and its fields; `reg` and `rm` include REX.R / REX.B (0..15). */
  hasModrm = false;
  mod = 0;
  reg = 0;
  rm = 0;
  /** Memory operand: base and index register (NO_REG when absent), scale shift 0..3, displacement (signed 32). */
  isMem = false;
  base = NO_REG;
  index = NO_REG;
  scale = 0;
  disp = 0;
  /** RIP-relative (64-bit mode, mod=00 rm=101): effective address = next RIP + disp. */
  ripRel = false;
  /**
   * First immediate as 32-bit halves (`imm` = low, `immHi` = high, both int32): Ib, Iw zero-extended
   * (immHi 0); sign-extended Ib (83 /x, 6A, 6B), Iz and Jb/Jz (branch displacement, relative to the
   * next instruction) carry their sign in immHi; Iv (MOV r64, imm64) and moffs use both halves as
   * read. A far pointer's offset lands here, its selector in `imm2`.
   */
  imm = 0;
  immHi = 0;
  /** Second immediate: ENTER's imm8, the selector of a far pointer (ptr16:16/32), EXTRQ/INSERTQ's second byte. */
  imm2 = 0;
  /** VEX.vvvv (inverted back to a register number 0..15) and VEX.L. */
  vvvv = 0;
  vexL = 0;
  /** Mandatory prefix the form consumed (as the MP branch): 0 none, 1 = 66, 2 = F3, 3 = F2; for VEX, VEX.pp. */
  mandatory = 0;
  /** Without REX, byte registers 4..7 are AH, CH, DH, BH; with any REX they are SPL, BPL, SIL, DIL. */
  byteRegsHigh = true;
}
