/**
 * KVM_CHECK_EXTENSION: the capabilities tskvm implements, and nothing else. Numbers from
 * include/uapi/linux/kvm.h (verified against the installed header by test/uapi.test.ts). Each
 * entry names the code that implements it; test/kvm.test.ts exercises each one.
 */
import { KVM_COALESCED_MMIO_PAGE_OFFSET } from "./coalesced-mmio.js";

export const KVM_API_VERSION = 12;

export const KVM_CAP_IRQCHIP = 0;
export const KVM_CAP_USER_MEMORY = 3;
export const KVM_CAP_SET_TSS_ADDR = 4;
export const KVM_CAP_EXT_CPUID = 7;
export const KVM_CAP_CLOCKSOURCE = 8;
export const KVM_CAP_NR_VCPUS = 9;
export const KVM_CAP_NR_MEMSLOTS = 10;
export const KVM_CAP_NOP_IO_DELAY = 12;
export const KVM_CAP_MP_STATE = 14;
export const KVM_CAP_COALESCED_MMIO = 15;
export const KVM_CAP_SYNC_MMU = 16;
export const KVM_CAP_SET_GUEST_DEBUG = 23;
export const KVM_CAP_IRQ_ROUTING = 25;
export const KVM_CAP_IRQ_INJECT_STATUS = 26;
export const KVM_CAP_IRQFD = 32;
export const KVM_CAP_PIT2 = 33;
export const KVM_CAP_PIT_STATE2 = 35;
export const KVM_CAP_IOEVENTFD = 36;
export const KVM_CAP_SET_IDENTITY_MAP_ADDR = 37;
export const KVM_CAP_ADJUST_CLOCK = 39;
export const KVM_CAP_VCPU_EVENTS = 41;
export const KVM_CAP_DEBUGREGS = 50;
export const KVM_CAP_XSAVE = 55;
export const KVM_CAP_XCRS = 56;
export const KVM_CAP_GET_TSC_KHZ = 61;
export const KVM_CAP_MAX_VCPUS = 66;
export const KVM_CAP_TSC_DEADLINE_TIMER = 72;
export const KVM_CAP_KVMCLOCK_CTRL = 76;
export const KVM_CAP_SIGNAL_MSI = 77;
export const KVM_CAP_READONLY_MEM = 81;
export const KVM_CAP_IRQFD_RESAMPLE = 82;
export const KVM_CAP_IOEVENTFD_ANY_LENGTH = 122;
export const KVM_CAP_MAX_VCPU_ID = 128;
export const KVM_CAP_IMMEDIATE_EXIT = 136;
export const KVM_CAP_COALESCED_PIO = 162;
export const KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 = 168;

/** Recommended and maximum vCPUs; ids stay below 256 so xAPIC 8-bit ids reach every vCPU. */
export const TSKVM_MAX_VCPUS = 255;

/** Capability -> value returned by KVM_CHECK_EXTENSION, with where it is implemented. */
export const CAPABILITIES: ReadonlyMap<number, { value: number; implementedBy: string }> = new Map([
  [KVM_CAP_IRQCHIP, { value: 1, implementedBy: "Vm.createIrqchip (irqchip.ts)" }],
  [KVM_CAP_USER_MEMORY, { value: 1, implementedBy: "Vm.setUserMemoryRegion (memory.ts)" }],
  [KVM_CAP_SET_TSS_ADDR, { value: 1, implementedBy: "Vm.setTssAddr (unrestricted guest: recorded only)" }],
  [KVM_CAP_SET_IDENTITY_MAP_ADDR, { value: 1, implementedBy: "Vm.setIdentityMapAddr" }],
  [KVM_CAP_EXT_CPUID, { value: 1, implementedBy: "Kvm.getSupportedCpuid (cpuid.ts)" }],
  [KVM_CAP_CLOCKSOURCE, { value: 1, implementedBy: "kvmclock MSRs (devices/kvmclock.ts)" }],
  [KVM_CAP_NR_VCPUS, { value: TSKVM_MAX_VCPUS, implementedBy: "Vm.createVcpu" }],
  [KVM_CAP_NR_MEMSLOTS, { value: 32764, implementedBy: "memory.ts KVM_USER_MEM_SLOTS" }],
  [KVM_CAP_NOP_IO_DELAY, { value: 1, implementedBy: "CPUID 0x40000001 KVM_FEATURE_NOP_IO_DELAY" }],
  [KVM_CAP_MP_STATE, { value: 1, implementedBy: "Vcpu.getMpState/setMpState" }],
  [
    KVM_CAP_COALESCED_MMIO,
    { value: KVM_COALESCED_MMIO_PAGE_OFFSET, implementedBy: "Vm.registerCoalescedMmio (coalesced-mmio.ts)" },
  ],
  [KVM_CAP_COALESCED_PIO, { value: 1, implementedBy: "Vm.registerCoalescedMmio with pio" }],
  [KVM_CAP_SYNC_MMU, { value: 1, implementedBy: "slots view the caller's buffer directly (memory.ts)" }],
  [
    KVM_CAP_IRQ_ROUTING,
    { value: 4096, implementedBy: "Vm.setGsiRouting (irq-routing.ts), KVM_MAX_IRQ_ROUTES" },
  ],
  [KVM_CAP_IRQ_INJECT_STATUS, { value: 1, implementedBy: "Vm.irqLine return value" }],
  [KVM_CAP_IRQFD, { value: 1, implementedBy: "Vm.irqfd" }],
  [KVM_CAP_PIT2, { value: 1, implementedBy: "Vm.createPit2 (devices/pit.ts)" }],
  [KVM_CAP_PIT_STATE2, { value: 1, implementedBy: "Vm.getPit2/setPit2" }],
  [KVM_CAP_IOEVENTFD, { value: 1, implementedBy: "Vm.ioeventfd (ioeventfd.ts)" }],
  [KVM_CAP_IOEVENTFD_ANY_LENGTH, { value: 1, implementedBy: "ioeventfd.ts len 0" }],
  [KVM_CAP_ADJUST_CLOCK, { value: 2 | 4, implementedBy: "Vm.getClock/setClock (TSC_STABLE|REALTIME)" }],
  [KVM_CAP_VCPU_EVENTS, { value: 1, implementedBy: "Vcpu.getVcpuEvents/setVcpuEvents" }],
  [KVM_CAP_DEBUGREGS, { value: 1, implementedBy: "Vcpu.getDebugRegs/setDebugRegs" }],
  [KVM_CAP_SET_GUEST_DEBUG, { value: 1, implementedBy: "Vcpu.setGuestDebug (guest-debug.ts, run/debug.ts)" }],
  [KVM_CAP_XSAVE, { value: 1, implementedBy: "Vcpu.getXsave/setXsave" }],
  [KVM_CAP_XCRS, { value: 1, implementedBy: "Vcpu.getXcrs/setXcrs" }],
  [KVM_CAP_GET_TSC_KHZ, { value: 1, implementedBy: "Vcpu.getTscKhz" }],
  [KVM_CAP_MAX_VCPUS, { value: TSKVM_MAX_VCPUS, implementedBy: "Vm.createVcpu" }],
  [KVM_CAP_MAX_VCPU_ID, { value: TSKVM_MAX_VCPUS, implementedBy: "Vm.createVcpu" }],
  [KVM_CAP_IMMEDIATE_EXIT, { value: 1, implementedBy: "Vcpu.run with runFields.immediateExit" }],
  [KVM_CAP_TSC_DEADLINE_TIMER, { value: 1, implementedBy: "devices/lapic.ts IA32_TSC_DEADLINE" }],
  [KVM_CAP_KVMCLOCK_CTRL, { value: 1, implementedBy: "Vcpu.kvmclockCtrl" }],
  [KVM_CAP_SIGNAL_MSI, { value: 1, implementedBy: "Vm.signalMsi" }],
  [KVM_CAP_READONLY_MEM, { value: 1, implementedBy: "KVM_MEM_READONLY (memory.ts)" }],
  [KVM_CAP_IRQFD_RESAMPLE, { value: 1, implementedBy: "Vm.irqfd resample" }],
  [KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, { value: 1, implementedBy: "Vm.enableCap + clearDirtyLog" }],
]);
