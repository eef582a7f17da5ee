// The public face of the CPU: state, the interfaces it declares, the memory path and the executor.

export {
  Block,
  Cpu,
  type CpuOptions,
  type CpuSnapshot,
  FlatMemory,
  NO_LINE,
  NO_PORTS,
  RunExit,
} from "./cpu.js";
export {
  CPUID_7_ECX_PKU,
  CPUID_D1_EAX_XSAVES,
  CpuidModel,
  type CpuidResult,
  XSAVE_PKRU_OFFSET_INTEL,
  XSS_SUPPORTED,
} from "./cpuid.js";
export { EventType } from "./exceptions.js";
export { FlagsCpu, LF } from "./flags.js";
export {
  Access,
  InterceptKind,
  type Intercepts,
  type InterruptSource,
  type OutputLine,
  type PagingRegs,
  type PhysicalMemory,
  type PortIo,
  type RamView,
  TranslateFault,
  type TranslateResult,
  type Translator,
  type TscClock,
} from "./interfaces.js";
export { JIT_STRAIGHT_FACTOR, JIT_THRESHOLD } from "./jit.js";
export { FAULT, IdentityTranslator, MemCpu, newTranslateResult, Vec } from "./memory.js";
export type { XInsn } from "./operands.js";
export { enterFlatLongMode, enterFlatProtectedMode } from "./setup.js";
export {
  AR,
  CpuState,
  CpuStateError,
  type CpuStateSnapshot,
  CR0,
  CR4,
  EFER,
  F,
  MSR_IA32_XSS,
  Msr,
  Reg,
  Seg,
  type SegmentState,
} from "./state.js";
export { PageWalker, PfErr } from "./walker.js";
