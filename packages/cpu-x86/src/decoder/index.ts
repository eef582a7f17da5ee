export { DecodeStatus, Insn, NO_REG, NO_SEG, Prefix } from "./insn.js";
