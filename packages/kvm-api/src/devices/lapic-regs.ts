/**
 * Local APIC register offsets and bits (SDM Vol. 3 chapter 11, Table 11-1 "Local APIC Register
 * Address Map" and Table 11-6 "Local APIC Register Address Map Supported by x2APIC").
 * The register page is KVM's: 1 KiB, each register a dword at its xAPIC offset
 * (`struct kvm_lapic_state`, KVM_GET_LAPIC).
 */
export const APIC_DEFAULT_BASE = 0xfee00000;
export const APIC_PAGE_SIZE = 0x1000;
export const KVM_APIC_REG_SIZE = 0x400;

export const APIC_ID = 0x20;
export const APIC_LVR = 0x30; // version
export const APIC_TASKPRI = 0x80; // TPR
export const APIC_ARBPRI = 0x90; // APR (not in x2APIC)
export const APIC_PROCPRI = 0xa0; // PPR
export const APIC_EOI = 0xb0;
export const APIC_RRR = 0xc0; // remote read (not in x2APIC)
export const APIC_LDR = 0xd0;
export const APIC_DFR = 0xe0; // not in x2APIC
export const APIC_SPIV = 0xf0; // spurious-interrupt vector register
export const APIC_ISR = 0x100;
export const APIC_TMR = 0x180;
export const APIC_IRR = 0x200;
export const APIC_ESR = 0x280;
export const APIC_LVTCMCI = 0x2f0;
export const APIC_ICR = 0x300;
export const APIC_ICR2 = 0x310;
export const APIC_LVTT = 0x320; // LVT timer
export const APIC_LVTTHMR = 0x330; // LVT thermal sensor
export const APIC_LVTPC = 0x340; // LVT performance counter
export const APIC_LVT0 = 0x350; // LINT0
export const APIC_LVT1 = 0x360; // LINT1
export const APIC_LVTERR = 0x370;
export const APIC_TMICT = 0x380; // timer initial count
export const APIC_TMCCT = 0x390; // timer current count
export const APIC_TDCR = 0x3e0; // timer divide configuration
export const APIC_SELF_IPI = 0x3f0; // x2APIC only

/** IA32_APIC_BASE (MSR 0x1b) bits, SDM 11.4.4. */
export const MSR_IA32_APICBASE = 0x1b;
export const APICBASE_BSP = 1 << 8;
export const APICBASE_EXTD = 1 << 10; // x2APIC mode
export const APICBASE_ENABLE = 1 << 11;
/** IA32_TSC_DEADLINE (SDM 11.5.4.1). */
export const MSR_IA32_TSC_DEADLINE = 0x6e0;
/** x2APIC MSRs are 0x800 + (xAPIC offset >> 4). */
export const X2APIC_MSR_BASE = 0x800;

/** Version register: version 0x14 (integrated APIC), max LVT entry 5 (no CMCI), as KVM's. */
export const APIC_VERSION = 0x14 | (5 << 16);

/** LVT bits. */
export const LVT_VECTOR = 0xff;
export const LVT_DELIVERY_MODE = 0x700;
export const LVT_DELIVERY_STATUS = 1 << 12;
export const LVT_POLARITY = 1 << 13;
export const LVT_REMOTE_IRR = 1 << 14;
export const LVT_LEVEL = 1 << 15;
export const LVT_MASKED = 1 << 16;
export const LVT_TIMER_MODE_MASK = 3 << 17;
export const LVT_TIMER_ONESHOT = 0;
export const LVT_TIMER_PERIODIC = 1 << 17;
export const LVT_TIMER_TSCDEADLINE = 2 << 17;

/** Writable bits of each LVT (SDM Figure 11-8); delivery status and remote IRR are read-only. */
export const LVT_WRITABLE: Record<number, number> = {
  [APIC_LVTT]: LVT_VECTOR | LVT_MASKED | LVT_TIMER_MODE_MASK,
  [APIC_LVTTHMR]: LVT_VECTOR | LVT_DELIVERY_MODE | LVT_MASKED,
  [APIC_LVTPC]: LVT_VECTOR | LVT_DELIVERY_MODE | LVT_MASKED,
  [APIC_LVT0]: LVT_VECTOR | LVT_DELIVERY_MODE | LVT_POLARITY | LVT_LEVEL | LVT_MASKED,
  [APIC_LVT1]: LVT_VECTOR | LVT_DELIVERY_MODE | LVT_POLARITY | LVT_LEVEL | LVT_MASKED,
  [APIC_LVTERR]: LVT_VECTOR | LVT_MASKED,
};
export const LVT_OFFSETS = [APIC_LVTT, APIC_LVTTHMR, APIC_LVTPC, APIC_LVT0, APIC_LVT1, APIC_LVTERR] as const;

/** Spurious-interrupt vector register bits (SDM Figure 11-23). */
export const SPIV_APIC_ENABLED = 1 << 8;
export const SPIV_FOCUS_DISABLED = 1 << 9;
/** Writable SVR bits: vector, software enable, focus (no EOI-broadcast suppression offered). */
export const SPIV_WRITABLE = 0x3ff;

/** ICR bits (SDM Figure 11-12). */
export const ICR_DEST_LOGICAL = 1 << 11;
export const ICR_DELIVERY_STATUS = 1 << 12;
export const ICR_LEVEL_ASSERT = 1 << 14;
export const ICR_TRIGGER_LEVEL = 1 << 15;
export const ICR_SHORTHAND_SHIFT = 18;
/** Writable ICR-low bits: everything but delivery status and the reserved bits. */
export const ICR_LOW_WRITABLE = 0x000cefff;

/** ESR bits (SDM Figure 11-9). */
export const ESR_SEND_ILLEGAL_VECTOR = 1 << 5;
export const ESR_RECEIVE_ILLEGAL_VECTOR = 1 << 6;
export const ESR_ILLEGAL_REGISTER = 1 << 7;

/** DFR models (bits 31:28). */
export const DFR_FLAT = 0xf;
export const DFR_CLUSTER = 0x0;

/** APIC bus cycle: 1 ns, as KVM's APIC_BUS_CYCLE_NS default (a 1 GHz timer base). */
export const APIC_BUS_CYCLE_NS = 1;
/** KVM's min_timer_period_us: periodic timers faster than 200 us are clamped (guest DoS guard). */
export const MIN_PERIODIC_NS = 200_000;

/** Timer divisor from TDCR bits 0, 1, 3 (SDM Figure 11-10): 0b111 is 1, otherwise 2 << value. */
export function tdcrDivisor(tdcr: number): number {
  const v = (tdcr & 3) | ((tdcr & 8) >> 1);
  return v === 7 ? 1 : 2 << v;
}
