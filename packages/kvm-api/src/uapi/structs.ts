/**
 * The KVM uapi structs at their Linux x86-64 layout (include/uapi/linux/kvm.h and
 * arch/x86/include/uapi/asm/kvm.h). Member paths are the C ones.
 */
import { type StructLayout, struct } from "./layout.js";

const u64x = (n: number) => ["u64", n] as const;

export const kvm_regs = struct(
  "kvm_regs",
  [
    "rax",
    "rbx",
    "rcx",
    "rdx",
    "rsi",
    "rdi",
    "rsp",
    "rbp",
    "r8",
    "r9",
    "r10",
    "r11",
    "r12",
    "r13",
    "r14",
    "r15",
  ]
    .concat(["rip", "rflags"])
    .map((n) => [n, "u64"]),
);

export const kvm_segment = struct("kvm_segment", [
  ["base", "u64"],
  ["limit", "u32"],
  ["selector", "u16"],
  ["type", "u8"],
  ["present", "u8"],
  ["dpl", "u8"],
  ["db", "u8"],
  ["s", "u8"],
  ["l", "u8"],
  ["g", "u8"],
  ["avl", "u8"],
  ["unusable", "u8"],
  ["padding", "u8"],
]);

export const kvm_dtable = struct("kvm_dtable", [
  ["base", "u64"],
  ["limit", "u16"],
  ["padding", "u16", 3],
]);

export const kvm_sregs = struct("kvm_sregs", [
  ...(["cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt"].map((n) => [n, kvm_segment]) as [
    string,
    StructLayout,
  ][]),
  ["gdt", kvm_dtable],
  ["idt", kvm_dtable],
  ["cr0", "u64"],
  ["cr2", "u64"],
  ["cr3", "u64"],
  ["cr4", "u64"],
  ["cr8", "u64"],
  ["efer", "u64"],
  ["apic_base", "u64"],
  ["interrupt_bitmap", ...u64x(4)],
]);

export const kvm_msr_entry = struct("kvm_msr_entry", [
  ["index", "u32"],
  ["reserved", "u32"],
  ["data", "u64"],
]);
/** Header only; `nmsrs` entries of kvm_msr_entry follow at offset 8. */
export const kvm_msrs = struct("kvm_msrs", [
  ["nmsrs", "u32"],
  ["pad", "u32"],
]);
/** Header only; `nmsrs` u32 indices follow at offset 4. */
export const kvm_msr_list = struct("kvm_msr_list", [["nmsrs", "u32"]]);

export const kvm_cpuid_entry2 = struct("kvm_cpuid_entry2", [
  ["function", "u32"],
  ["index", "u32"],
  ["flags", "u32"],
  ["eax", "u32"],
  ["ebx", "u32"],
  ["ecx", "u32"],
  ["edx", "u32"],
  ["padding", "u32", 3],
]);
/** Header only; `nent` kvm_cpuid_entry2 follow at offset 8. */
export const kvm_cpuid2 = struct("kvm_cpuid2", [
  ["nent", "u32"],
  ["padding", "u32"],
]);

export const kvm_userspace_memory_region = struct("kvm_userspace_memory_region", [
  ["slot", "u32"],
  ["flags", "u32"],
  ["guest_phys_addr", "u64"],
  ["memory_size", "u64"],
  ["userspace_addr", "u64"],
]);

export const kvm_irq_level = struct("kvm_irq_level", [
  ["irq", "u32"],
  ["status", "s32", 1, { at: 0 }],
  ["level", "u32"],
]);

export const kvm_lapic_state = struct("kvm_lapic_state", [["regs", "u8", 1024]]);

export const kvm_pit_channel_state = struct("kvm_pit_channel_state", [
  ["count", "u32"],
  ["latched_count", "u16"],
  ["count_latched", "u8"],
  ["status_latched", "u8"],
  ["status", "u8"],
  ["read_state", "u8"],
  ["write_state", "u8"],
  ["write_latch", "u8"],
  ["rw_mode", "u8"],
  ["mode", "u8"],
  ["bcd", "u8"],
  ["gate", "u8"],
  ["count_load_time", "s64"],
]);
export const kvm_pit_state2 = struct("kvm_pit_state2", [
  ["channels", kvm_pit_channel_state, 3],
  ["flags", "u32"],
  ["reserved", "u32", 9],
]);
export const kvm_pit_config = struct("kvm_pit_config", [
  ["flags", "u32"],
  ["pad", "u32", 15],
]);

export const kvm_pic_state = struct(
  "kvm_pic_state",
  [
    "last_irr",
    "irr",
    "imr",
    "isr",
    "priority_add",
    "irq_base",
    "read_reg_select",
    "poll",
    "special_mask",
    "init_state",
    "auto_eoi",
    "rotate_on_auto_eoi",
    "special_fully_nested_mode",
    "init4",
    "elcr",
    "elcr_mask",
  ].map((n) => [n, "u8"]),
);
export const kvm_ioapic_state = struct("kvm_ioapic_state", [
  ["base_address", "u64"],
  ["ioregsel", "u32"],
  ["id", "u32"],
  ["irr", "u32"],
  ["pad", "u32"],
  ["redirtbl", "u64", 24],
]);
export const kvm_irqchip = struct("kvm_irqchip", [
  ["chip_id", "u32"],
  ["pad", "u32"],
  ["chip.dummy", "u8", 512],
  ["chip.pic", kvm_pic_state, 1, { at: 8 }],
  ["chip.ioapic", kvm_ioapic_state, 1, { at: 8 }],
]);

export const kvm_fpu = struct("kvm_fpu", [
  ["fpr", "u8", 128],
  ["fcw", "u16"],
  ["fsw", "u16"],
  ["ftwx", "u8"],
  ["pad1", "u8"],
  ["last_opcode", "u16"],
  ["last_ip", "u64"],
  ["last_dp", "u64"],
  ["xmm", "u8", 256],
  ["mxcsr", "u32"],
  ["pad2", "u32"],
]);

export const kvm_xsave = struct("kvm_xsave", [["region", "u32", 1024]]);
export const kvm_xcr = struct("kvm_xcr", [
  ["xcr", "u32"],
  ["reserved", "u32"],
  ["value", "u64"],
]);
export const kvm_xcrs = struct("kvm_xcrs", [
  ["nr_xcrs", "u32"],
  ["flags", "u32"],
  ["xcrs", kvm_xcr, 16],
  ["padding", "u64", 16],
]);

export const kvm_vcpu_events = struct("kvm_vcpu_events", [
  ["exception.injected", "u8"],
  ["exception.nr", "u8"],
  ["exception.has_error_code", "u8"],
  ["exception.pending", "u8"],
  ["exception.error_code", "u32"],
  ["interrupt.injected", "u8"],
  ["interrupt.nr", "u8"],
  ["interrupt.soft", "u8"],
  ["interrupt.shadow", "u8"],
  ["nmi.injected", "u8"],
  ["nmi.pending", "u8"],
  ["nmi.masked", "u8"],
  ["nmi.pad", "u8"],
  ["sipi_vector", "u32"],
  ["flags", "u32"],
  ["smi.smm", "u8"],
  ["smi.pending", "u8"],
  ["smi.smm_inside_nmi", "u8"],
  ["smi.latched_init", "u8"],
  ["triple_fault.pending", "u8"],
  ["reserved", "u8", 26],
  ["exception_has_payload", "u8"],
  ["exception_payload", "u64"],
]);

export const kvm_debugregs = struct("kvm_debugregs", [
  ["db", ...u64x(4)],
  ["dr6", "u64"],
  ["dr7", "u64"],
  ["flags", "u64"],
  ["reserved", ...u64x(9)],
]);

export const kvm_mp_state = struct("kvm_mp_state", [["mp_state", "u32"]]);

export const kvm_clock_data = struct("kvm_clock_data", [
  ["clock", "u64"],
  ["flags", "u32"],
  ["pad0", "u32"],
  ["realtime", "u64"],
  ["host_tsc", "u64"],
  ["pad", "u32", 4],
]);

export const kvm_dirty_log = struct("kvm_dirty_log", [
  ["slot", "u32"],
  ["padding1", "u32"],
  ["dirty_bitmap", "u64"],
]);
export const kvm_clear_dirty_log = struct("kvm_clear_dirty_log", [
  ["slot", "u32"],
  ["num_pages", "u32"],
  ["first_page", "u64"],
  ["dirty_bitmap", "u64"],
]);

export const kvm_irqfd = struct("kvm_irqfd", [
  ["fd", "u32"],
  ["gsi", "u32"],
  ["flags", "u32"],
  ["resamplefd", "u32"],
  ["pad", "u8", 16],
]);
export const kvm_ioeventfd = struct("kvm_ioeventfd", [
  ["datamatch", "u64"],
  ["addr", "u64"],
  ["len", "u32"],
  ["fd", "s32"],
  ["flags", "u32"],
  ["pad", "u8", 36],
]);
export const kvm_coalesced_mmio_zone = struct("kvm_coalesced_mmio_zone", [
  ["addr", "u64"],
  ["size", "u32"],
  ["pio", "u32"],
]);
export const kvm_msi = struct("kvm_msi", [
  ["address_lo", "u32"],
  ["address_hi", "u32"],
  ["data", "u32"],
  ["flags", "u32"],
  ["devid", "u32"],
  ["pad", "u8", 12],
]);
export const kvm_irq_routing_entry = struct("kvm_irq_routing_entry", [
  ["gsi", "u32"],
  ["type", "u32"],
  ["flags", "u32"],
  ["pad", "u32"],
  ["u.pad", "u32", 8],
  ["u.irqchip.irqchip", "u32", 1, { at: 16 }],
  ["u.irqchip.pin", "u32", 1, { at: 20 }],
  ["u.msi.address_lo", "u32", 1, { at: 16 }],
  ["u.msi.address_hi", "u32", 1, { at: 20 }],
  ["u.msi.data", "u32", 1, { at: 24 }],
]);
/** Header only; `nr` kvm_irq_routing_entry follow at offset 8. */
export const kvm_irq_routing = struct("kvm_irq_routing", [
  ["nr", "u32"],
  ["flags", "u32"],
]);
export const kvm_enable_cap = struct("kvm_enable_cap", [
  ["cap", "u32"],
  ["flags", "u32"],
  ["args", ...u64x(4)],
  ["pad", "u8", 64],
]);
export const kvm_translation = struct("kvm_translation", [
  ["linear_address", "u64"],
  ["physical_address", "u64"],
  ["valid", "u8"],
  ["writeable", "u8"],
  ["usermode", "u8"],
  ["pad", "u8", 5],
]);
export const kvm_interrupt = struct("kvm_interrupt", [["irq", "u32"]]);
export const kvm_guest_debug = struct("kvm_guest_debug", [
  ["control", "u32"],
  ["pad", "u32"],
  ["arch.debugreg", ...u64x(8)],
]);

/** `struct kvm_run`: header, the exit union at 32 (256 bytes), sync regs from 288. */
export const kvm_run = struct(
  "kvm_run",
  [
    ["request_interrupt_window", "u8"],
    ["immediate_exit", "u8"],
    ["padding1", "u8", 6],
    ["exit_reason", "u32"],
    ["ready_for_interrupt_injection", "u8"],
    ["if_flag", "u8"],
    ["flags", "u16"],
    ["cr8", "u64"],
    ["apic_base", "u64"],
    ["hw.hardware_exit_reason", "u64", 1, { at: 32 }],
    ["fail_entry.hardware_entry_failure_reason", "u64", 1, { at: 32 }],
    ["fail_entry.cpu", "u32", 1, { at: 40 }],
    ["ex.exception", "u32", 1, { at: 32 }],
    ["ex.error_code", "u32", 1, { at: 36 }],
    ["io.direction", "u8", 1, { at: 32 }],
    ["io.size", "u8", 1, { at: 33 }],
    ["io.port", "u16", 1, { at: 34 }],
    ["io.count", "u32", 1, { at: 36 }],
    ["io.data_offset", "u64", 1, { at: 40 }],
    ["debug.arch.exception", "u32", 1, { at: 32 }],
    ["debug.arch.pad", "u32", 1, { at: 36 }],
    ["debug.arch.pc", "u64", 1, { at: 40 }],
    ["debug.arch.dr6", "u64", 1, { at: 48 }],
    ["debug.arch.dr7", "u64", 1, { at: 56 }],
    ["mmio.phys_addr", "u64", 1, { at: 32 }],
    ["mmio.data", "u8", 8, { at: 40 }],
    ["mmio.len", "u32", 1, { at: 48 }],
    ["mmio.is_write", "u8", 1, { at: 52 }],
    ["internal.suberror", "u32", 1, { at: 32 }],
    ["internal.ndata", "u32", 1, { at: 36 }],
    ["internal.data", "u64", 16, { at: 40 }],
    ["system_event.type", "u32", 1, { at: 32 }],
    ["system_event.ndata", "u32", 1, { at: 36 }],
    ["system_event.data", "u64", 16, { at: 40 }],
    ["padding", "u8", 256, { at: 32 }],
    ["kvm_valid_regs", "u64", 1, { at: 288 }],
    ["kvm_dirty_regs", "u64", 1, { at: 296 }],
    ["s.padding", "u8", 2048, { at: 304 }],
  ],
  304 + 2048,
);

/** Every layout, for the header check. */
export const ALL_STRUCTS: readonly StructLayout[] = [
  kvm_regs,
  kvm_segment,
  kvm_dtable,
  kvm_sregs,
  kvm_msr_entry,
  kvm_msrs,
  kvm_msr_list,
  kvm_cpuid_entry2,
  kvm_cpuid2,
  kvm_userspace_memory_region,
  kvm_irq_level,
  kvm_lapic_state,
  kvm_pit_channel_state,
  kvm_pit_state2,
  kvm_pit_config,
  kvm_pic_state,
  kvm_ioapic_state,
  kvm_irqchip,
  kvm_fpu,
  kvm_xsave,
  kvm_xcr,
  kvm_xcrs,
  kvm_vcpu_events,
  kvm_debugregs,
  kvm_mp_state,
  kvm_clock_data,
  kvm_dirty_log,
  kvm_clear_dirty_log,
  kvm_irqfd,
  kvm_ioeventfd,
  kvm_coalesced_mmio_zone,
  kvm_msi,
  kvm_irq_routing_entry,
  kvm_irq_routing,
  kvm_enable_cap,
  kvm_translation,
  kvm_interrupt,
  kvm_guest_debug,
  kvm_run,
];
