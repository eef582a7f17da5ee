// The decoder's public face: decode bytes into an Insn, the generated Op ids and per-form tables,
// operand descriptions, and the Intel-syntax formatter.

export {
  type DisasmError,
  type DisasmMode,
  describeDisasmError,
  disassembleBinary,
  disassembleLines,
  parseHexLine,
  parseMode,
} from "../format/disasm.js";
export { formatIntel, gprName, hex as formatHex } from "../format/intel.js";
export {
  ATTR_DOC,
  Feature as IsaFeature,
  OP_COUNT,
  OP_FLAGS_READ,
  OP_FLAGS_UNDEFINED,
  OP_FLAGS_WRITTEN,
  OP_NAMES,
  Op,
  OpKind,
  OpSize,
} from "../generated/ops.js";
export {
  FA,
  FORM_ATTR,
  FORM_COUNT,
  FORM_FEATURE,
  FORM_FLAGS_READ,
  FORM_FLAGS_UNDEFINED,
  FORM_FLAGS_WRITTEN,
  FORM_OP,
  FORM_OPERANDS,
  FORM_WHERE,
} from "../generated/tables.js";
export { decode, MAX_INSN_LENGTH } from "./decode.js";
export { DecodeStatus, Insn, NO_REG, NO_SEG, Prefix } from "./insn.js";
export {
  formLockable,
  formOperands,
  OperandAccess,
  type OperandSpec,
  operandBytes,
  operandCount,
  operandWord,
  wordAccess,
  wordKind,
  wordReg,
  wordSize,
} from "./operands.js";
