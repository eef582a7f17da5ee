/**
 * @tskvm/kvm-api: the KVM interface (Kvm -> Vm -> Vcpu), the in-kernel devices and the uapi
 * byte layouts. See README.md.
 */
export const PACKAGE_NAME = "@tskvm/kvm-api";

export * from "./caps.js";
export * from "./clock.js";
export * from "./coalesced-mmio.js";
export * from "./cpuid.js";
export * from "./devices/apic-bus.js";
export * from "./devices/ioapic.js";
export * from "./devices/kvmclock.js";
export * from "./devices/lapic.js";
export * as LapicRegs from "./devices/lapic-regs.js";
export * from "./devices/pic.js";
export * from "./devices/pit.js";
export * from "./errors.js";
export * from "./exits.js";
export * from "./guest-debug.js";
export * from "./ioeventfd.js";
export * from "./irq-routing.js";
export {
  IRQ_SOURCE_IRQFD,
  IRQ_SOURCE_PIT,
  IRQ_SOURCE_USERSPACE,
  Irqchip,
  type IrqchipHooks,
} from "./irqchip.js";
export { KVM_VCPU_MMAP_SIZE, Kvm, type KvmOptions } from "./kvm.js";
export * from "./memory.js";
export * from "./run/index.js";
export * from "./snapshot.js";
export { type KvmTranslation, type TranslateMemory, translate } from "./translate.js";
export * from "./uapi/codec.js";
export * as Ioctl from "./uapi/ioctl.js";
export { KvmFds } from "./uapi/kvm-fd.js";
export {
  type Field,
  type Member,
  type Scalar,
  type StructLayout,
  StructView,
  struct,
} from "./uapi/layout.js";
export * as Uapi from "./uapi/structs.js";
export * from "./vcpu.js";
export * from "./vcpu-state.js";
export { type IrqchipState, type Irqfd, Vm, type VmOptions } from "./vm.js";
