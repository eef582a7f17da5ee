/**
 * ioctl request numbers as include/uapi/linux/kvm.h builds them with the asm-generic _IOC macros
 * (include/uapi/asm-generic/ioctl.h): dir << 30 | size << 16 | type << 8 | nr, KVMIO = 0xAE.
 * Sizes come from the struct layouts, so a layout error shows up here too.
 */
import * as T from "./structs.js";

export const _IOC_NONE = 0;
export const _IOC_WRITE = 1;
export const _IOC_READ = 2;
export const KVMIO = 0xae;

export function _IOC(dir: number, type: number, nr: number, size: number): number {
  return ((dir << 30) | (size << 16) | (type << 8) | nr) >>> 0;
}
export const _IO = (type: number, nr: number) => _IOC(_IOC_NONE, type, nr, 0);
export const _IOR = (type: number, nr: number, size: number) => _IOC(_IOC_READ, type, nr, size);
export const _IOW = (type: number, nr: number, size: number) => _IOC(_IOC_WRITE, type, nr, size);
export const _IOWR = (type: number, nr: number, size: number) => _IOC(_IOC_READ | _IOC_WRITE, type, nr, size);

/** Field accessors for a request number. */
export const _IOC_DIR = (req: number) => req >>> 30;
export const _IOC_SIZE = (req: number) => (req >>> 16) & 0x3fff;
export const _IOC_NR = (req: number) => req & 0xff;

// System ioctls (on /dev/kvm)
export const KVM_GET_API_VERSION = _IO(KVMIO, 0x00);
export const KVM_CREATE_VM = _IO(KVMIO, 0x01);
export const KVM_GET_MSR_INDEX_LIST = _IOWR(KVMIO, 0x02, T.kvm_msr_list.size);
export const KVM_CHECK_EXTENSION = _IO(KVMIO, 0x03);
export const KVM_GET_VCPU_MMAP_SIZE = _IO(KVMIO, 0x04);
export const KVM_GET_SUPPORTED_CPUID = _IOWR(KVMIO, 0x05, T.kvm_cpuid2.size);

// VM ioctls
export const KVM_CREATE_VCPU = _IO(KVMIO, 0x41);
export const KVM_GET_DIRTY_LOG = _IOW(KVMIO, 0x42, T.kvm_dirty_log.size);
export const KVM_SET_USER_MEMORY_REGION = _IOW(KVMIO, 0x46, T.kvm_userspace_memory_region.size);
export const KVM_SET_TSS_ADDR = _IO(KVMIO, 0x47);
export const KVM_SET_IDENTITY_MAP_ADDR = _IOW(KVMIO, 0x48, 8);
export const KVM_CREATE_IRQCHIP = _IO(KVMIO, 0x60);
export const KVM_IRQ_LINE = _IOW(KVMIO, 0x61, T.kvm_irq_level.size);
export const KVM_GET_IRQCHIP = _IOWR(KVMIO, 0x62, T.kvm_irqchip.size);
export const KVM_SET_IRQCHIP = _IOR(KVMIO, 0x63, T.kvm_irqchip.size);
export const KVM_REGISTER_COALESCED_MMIO = _IOW(KVMIO, 0x67, T.kvm_coalesced_mmio_zone.size);
export const KVM_UNREGISTER_COALESCED_MMIO = _IOW(KVMIO, 0x68, T.kvm_coalesced_mmio_zone.size);
export const KVM_IRQ_LINE_STATUS = _IOWR(KVMIO, 0x67, T.kvm_irq_level.size);
export const KVM_SET_GSI_ROUTING = _IOW(KVMIO, 0x6a, T.kvm_irq_routing.size);
export const KVM_IRQFD = _IOW(KVMIO, 0x76, T.kvm_irqfd.size);
export const KVM_CREATE_PIT2 = _IOW(KVMIO, 0x77, T.kvm_pit_config.size);
export const KVM_IOEVENTFD = _IOW(KVMIO, 0x79, T.kvm_ioeventfd.size);
export const KVM_SET_CLOCK = _IOW(KVMIO, 0x7b, T.kvm_clock_data.size);
export const KVM_GET_CLOCK = _IOR(KVMIO, 0x7c, T.kvm_clock_data.size);
export const KVM_GET_PIT2 = _IOR(KVMIO, 0x9f, T.kvm_pit_state2.size);
export const KVM_SET_PIT2 = _IOW(KVMIO, 0xa0, T.kvm_pit_state2.size);
export const KVM_ENABLE_CAP = _IOW(KVMIO, 0xa3, T.kvm_enable_cap.size);
export const KVM_SIGNAL_MSI = _IOW(KVMIO, 0xa5, T.kvm_msi.size);
export const KVM_CLEAR_DIRTY_LOG = _IOWR(KVMIO, 0xc0, T.kvm_clear_dirty_log.size);

// vCPU ioctls
export const KVM_RUN = _IO(KVMIO, 0x80);
export const KVM_GET_REGS = _IOR(KVMIO, 0x81, T.kvm_regs.size);
export const KVM_SET_REGS = _IOW(KVMIO, 0x82, T.kvm_regs.size);
export const KVM_GET_SREGS = _IOR(KVMIO, 0x83, T.kvm_sregs.size);
export const KVM_SET_SREGS = _IOW(KVMIO, 0x84, T.kvm_sregs.size);
export const KVM_TRANSLATE = _IOWR(KVMIO, 0x85, T.kvm_translation.size);
export const KVM_INTERRUPT = _IOW(KVMIO, 0x86, T.kvm_interrupt.size);
export const KVM_GET_MSRS = _IOWR(KVMIO, 0x88, T.kvm_msrs.size);
export const KVM_SET_MSRS = _IOW(KVMIO, 0x89, T.kvm_msrs.size);
export const KVM_GET_FPU = _IOR(KVMIO, 0x8c, T.kvm_fpu.size);
export const KVM_SET_FPU = _IOW(KVMIO, 0x8d, T.kvm_fpu.size);
export const KVM_GET_LAPIC = _IOR(KVMIO, 0x8e, T.kvm_lapic_state.size);
export const KVM_SET_LAPIC = _IOW(KVMIO, 0x8f, T.kvm_lapic_state.size);
export const KVM_SET_CPUID2 = _IOW(KVMIO, 0x90, T.kvm_cpuid2.size);
export const KVM_GET_CPUID2 = _IOWR(KVMIO, 0x91, T.kvm_cpuid2.size);
export const KVM_GET_MP_STATE = _IOR(KVMIO, 0x98, T.kvm_mp_state.size);
export const KVM_SET_MP_STATE = _IOW(KVMIO, 0x99, T.kvm_mp_state.size);
export const KVM_NMI = _IO(KVMIO, 0x9a);
export const KVM_SET_GUEST_DEBUG = _IOW(KVMIO, 0x9b, T.kvm_guest_debug.size);
export const KVM_GET_VCPU_EVENTS = _IOR(KVMIO, 0x9f, T.kvm_vcpu_events.size);
export const KVM_SET_VCPU_EVENTS = _IOW(KVMIO, 0xa0, T.kvm_vcpu_events.size);
export const KVM_GET_DEBUGREGS = _IOR(KVMIO, 0xa1, T.kvm_debugregs.size);
export const KVM_SET_DEBUGREGS = _IOW(KVMIO, 0xa2, T.kvm_debugregs.size);
export const KVM_SET_TSC_KHZ = _IO(KVMIO, 0xa2);
export const KVM_GET_TSC_KHZ = _IO(KVMIO, 0xa3);
export const KVM_GET_XSAVE = _IOR(KVMIO, 0xa4, T.kvm_xsave.size);
export const KVM_SET_XSAVE = _IOW(KVMIO, 0xa5, T.kvm_xsave.size);
export const KVM_GET_XCRS = _IOR(KVMIO, 0xa6, T.kvm_xcrs.size);
export const KVM_SET_XCRS = _IOW(KVMIO, 0xa7, T.kvm_xcrs.size);
export const KVM_KVMCLOCK_CTRL = _IO(KVMIO, 0xad);

/** Name -> request number, for the header check and for tracing. */
export const IOCTLS: Readonly<Record<string, number>> = {
  KVM_GET_API_VERSION,
  KVM_CREATE_VM,
  KVM_GET_MSR_INDEX_LIST,
  KVM_CHECK_EXTENSION,
  KVM_GET_VCPU_MMAP_SIZE,
  KVM_GET_SUPPORTED_CPUID,
  KVM_CREATE_VCPU,
  KVM_GET_DIRTY_LOG,
  KVM_SET_USER_MEMORY_REGION,
  KVM_SET_TSS_ADDR,
  KVM_SET_IDENTITY_MAP_ADDR,
  KVM_CREATE_IRQCHIP,
  KVM_IRQ_LINE,
  KVM_GET_IRQCHIP,
  KVM_SET_IRQCHIP,
  KVM_IRQ_LINE_STATUS,
  KVM_REGISTER_COALESCED_MMIO,
  KVM_UNREGISTER_COALESCED_MMIO,
  KVM_SET_GSI_ROUTING,
  KVM_IRQFD,
  KVM_CREATE_PIT2,
  KVM_IOEVENTFD,
  KVM_SET_CLOCK,
  KVM_GET_CLOCK,
  KVM_GET_PIT2,
  KVM_SET_PIT2,
  KVM_ENABLE_CAP,
  KVM_SIGNAL_MSI,
  KVM_CLEAR_DIRTY_LOG,
  KVM_RUN,
  KVM_GET_REGS,
  KVM_SET_REGS,
  KVM_GET_SREGS,
  KVM_SET_SREGS,
  KVM_TRANSLATE,
  KVM_INTERRUPT,
  KVM_GET_MSRS,
  KVM_SET_MSRS,
  KVM_GET_FPU,
  KVM_SET_FPU,
  KVM_GET_LAPIC,
  KVM_SET_LAPIC,
  KVM_SET_CPUID2,
  KVM_GET_CPUID2,
  KVM_GET_MP_STATE,
  KVM_SET_MP_STATE,
  KVM_NMI,
  KVM_SET_GUEST_DEBUG,
  KVM_GET_VCPU_EVENTS,
  KVM_SET_VCPU_EVENTS,
  KVM_GET_DEBUGREGS,
  KVM_SET_DEBUGREGS,
  KVM_SET_TSC_KHZ,
  KVM_GET_TSC_KHZ,
  KVM_GET_XSAVE,
  KVM_SET_XSAVE,
  KVM_GET_XCRS,
  KVM_SET_XCRS,
  KVM_KVMCLOCK_CTRL,
};
