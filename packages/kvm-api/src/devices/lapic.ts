/**
 * One local APIC (SDM Vol. 3 chapter 11): the xAPIC MMIO page and the x2APIC MSRs, the timer
 * (one-shot, periodic, TSC-deadline), LVTs, IPIs (including INIT/SIPI and shorthands), TPR/PPR,
 * IRR/ISR/TMR priority, EOI with broadcast to the IOAPIC, the spurious vector register and
 * IA32_APIC_BASE. Cross-checked with Linux arch/x86/kernel/apic/apic.c and KVM arch/x86/kvm/lapic.c.
 *
 * No timers inside: {@link Lapic.nextDeadlineNs} tells the run loop when to call {@link Lapic.tick}.
 */
import type { VmClock } from "../clock.js";
import { type ApicBus, type ApicMessage, DeliveryMode, Shorthand } from "./apic-bus.js";
import * as R from "./lapic-regs.js";

/** What a LAPIC needs from its surroundings. */
export interface LapicHost {
  bus: ApicBus;
  clock: VmClock;
  /** The vCPU's TSC at VM time `ns`. */
  tscAt(ns: number): number;
  /** The first VM time at which the vCPU's TSC reaches `tsc`. */
  nsAtTsc(tsc: number): number;
  /** EOI of a level-triggered vector: broadcast to the IOAPIC (SDM 11.8.5). */
  eoiBroadcast(vector: number): void;
  /** Something became pending for this vCPU (interrupt, NMI, INIT, SIPI): wake it. */
  kick(): void;
  /** CPUID.1:ECX.TSC_DEADLINE[24] as offered to the guest. */
  tscDeadline: boolean;
  /** CPUID.1:ECX.x2APIC[21] as offered to the guest. */
  x2apic: boolean;
}

/** Pending INIT / SIPI, as KVM's apic->pending_events. */
export const PENDING_INIT = 1;
export const PENDING_SIPI = 2;

/** Saved LAPIC state: the KVM register page plus what KVM keeps beside it. */
export interface LapicState {
  /** The 1 KiB register page as 256 dwords (`struct kvm_lapic_state`); TMCCT holds the current count. */
  regs: number[];
  apicBase: number;
  /** Remaining ns of the timer when saved (-1 idle); restored relative to the clock. */
  timerRemainingNs: number;
  tscDeadline: number;
  pendingEvents: number;
  sipiVector: number;
  nmiPending: number;
}

function highestBit(words: Uint32Array, base: number): number {
  for (let i = 7; i >= 0; i--) {
    const w = words[base + i * 4]!;
    if (w !== 0) return i * 32 + 31 - Math.clz32(w);
  }
  return -1;
}

/** A local APIC. `id` is the vCPU id, which is the APIC id on x86 (api.rst KVM_CREATE_VCPU). */
export class Lapic {
  /** Register page, indexed by offset >> 2 (a register lives at index offset/4). */
  readonly regs = new Uint32Array(R.KVM_APIC_REG_SIZE / 4);
  apicBase: number;
  /** Errors found since the last ESR write (SDM 11.5.3: ESR shows them after the write). */
  private esrPending = 0;
  private timerDeadlineNs = Number.POSITIVE_INFINITY;
  private timerPeriodNs = 0;
  private tscDeadlineValue = 0;
  pendingEvents = 0;
  sipiVector = 0;
  /** NMIs delivered to this vCPU and not yet taken. */
  nmiPending = 0;

  constructor(
    readonly id: number,
    private readonly host: LapicHost,
  ) {
    this.apicBase = R.APIC_DEFAULT_BASE + R.APICBASE_ENABLE + (id === 0 ? R.APICBASE_BSP : 0);
    this.reset(false);
  }

  // ---- modes ----

  /** IA32_APIC_BASE.EN: the APIC is present (hardware enabled). */
  get hwEnabled(): boolean {
    return (this.apicBase & R.APICBASE_ENABLE) !== 0;
  }
  get x2apicMode(): boolean {
    return (this.apicBase & (R.APICBASE_ENABLE | R.APICBASE_EXTD)) === (R.APICBASE_ENABLE | R.APICBASE_EXTD);
  }
  /** SVR bit 8: software enabled (SDM 11.4.7.2). */
  get swEnabled(): boolean {
    return (this.reg(R.APIC_SPIV) & R.SPIV_APIC_ENABLED) !== 0;
  }
  /** Guest-physical base of the xAPIC MMIO page, or -1 when the MMIO interface is off. */
  get mmioBase(): number {
    if (!this.hwEnabled || this.x2apicMode) return -1;
    return this.apicBase - (this.apicBase % R.APIC_PAGE_SIZE);
  }

  reg(offset: number): number {
    return this.regs[offset >> 2]!;
  }
  private setReg(offset: number, v: number): void {
    this.regs[offset >> 2] = v;
  }

  /**
   * Power-up reset, or the INIT reset (SDM 11.4.7.1 and 11.4.7.3): IRR/ISR/TMR/ICR/LDR/TPR and
   * timer counts zero, DFR all ones, LVTs masked, SVR 0xFF. INIT keeps the APIC id and base.
   */
  reset(initEvent: boolean): void {
    if (!initEvent) {
      this.apicBase = R.APIC_DEFAULT_BASE + R.APICBASE_ENABLE + (this.id === 0 ? R.APICBASE_BSP : 0);
    }
    const keepId = this.reg(R.APIC_ID);
    this.regs.fill(0);
    this.setReg(R.APIC_ID, initEvent ? keepId : this.x2apicMode ? this.id : (this.id & 0xff) << 24);
    this.setReg(R.APIC_LVR, R.APIC_VERSION);
    this.setReg(R.APIC_DFR, 0xffffffff);
    this.setReg(R.APIC_SPIV, 0xff);
    for (const o of R.LVT_OFFSETS) this.setReg(o, R.LVT_MASKED);
    // KVM_X86_QUIRK_LINT0_REENABLED (on by default): the BSP comes out of RESET with LINT0 as
    // unmasked ExtINT, so PIC interrupts reach it before the guest programs its APIC. The SDM's
    // reset value is masked (11.4.7.1); real KVM reports 0x700 here, after INIT too.
    if (this.id === 0) this.setReg(R.APIC_LVT0, DeliveryMode.ExtInt << 8);
    if (this.x2apicMode) this.setReg(R.APIC_LDR, this.x2apicLdr());
    this.esrPending = 0;
    this.timerDeadlineNs = Number.POSITIVE_INFINITY;
    this.timerPeriodNs = 0;
    this.tscDeadlineValue = 0;
    this.pendingEvents = 0;
    this.nmiPending = 0;
  }

  private x2apicLdr(): number {
    // SDM 11.12.10.2: logical x2APIC id = cluster (id[19:4]) << 16 | 1 << id[3:0].
    return (((this.id >>> 4) << 16) | (1 << (this.id & 0xf))) >>> 0;
  }

  /**
   * Write of IA32_APIC_BASE. Returns false for a write that faults (#GP): reserved bits
   * (0-7, 9, above MAXPHYADDR, EXTD without x2APIC support), EN=0 with EXTD=1, and, for the
   * guest (not `hostInitiated`), x2APIC -> xAPIC and disabled -> x2APIC (SDM 11.12.5, Figure 11-27).
   */
  setApicBase(value: number, hostInitiated: boolean, maxPhysAddrBits = 46): boolean {
    const reserved = 0x2ff | (this.host.x2apic ? 0 : R.APICBASE_EXTD);
    if ((value % 0x1000) & reserved || value >= 2 ** maxPhysAddrBits || value < 0) return false;
    const en = (value & R.APICBASE_ENABLE) !== 0;
    const extd = (value & R.APICBASE_EXTD) !== 0;
    if (!en && extd) return false;
    const wasX2 = this.x2apicMode;
    const wasEnabled = this.hwEnabled;
    if (!hostInitiated) {
      if (wasX2 && en && !extd) return false;
      if (!wasEnabled && extd) return false;
    }
    this.apicBase = value;
    if (en && extd && !wasX2) {
      this.setReg(R.APIC_ID, this.id);
      this.setReg(R.APIC_LDR, this.x2apicLdr());
    } else if (en && !extd && (wasX2 || !wasEnabled)) {
      this.setReg(R.APIC_ID, (this.id & 0xff) << 24);
      if (wasX2) this.setReg(R.APIC_LDR, 0);
    }
    return true;
  }

  /** This APIC's id as destinations compare it: 8 bits in xAPIC, 32 in x2APIC. */
  get apicId(): number {
    return this.x2apicMode ? this.reg(R.APIC_ID) : this.reg(R.APIC_ID) >>> 24;
  }

  // ---- priority ----

  /** PPR (SDM 11.8.3.1): TPR if its class is at least the highest in-service class, else that class. */
  ppr(): number {
    const tpr = this.reg(R.APIC_TASKPRI) & 0xff;
    const isrv = Math.max(highestBit(this.regs, R.APIC_ISR >> 2), 0);
    return (tpr & 0xf0) >= (isrv & 0xf0) ? tpr : isrv & 0xf0;
  }

  /** The vector the APIC would deliver now (highest IRR above PPR's class), or -1. */
  pendingVector(): number {
    if (!this.hwEnabled) return -1;
    const v = highestBit(this.regs, R.APIC_IRR >> 2);
    if (v < 0 || (v & 0xf0) <= (this.ppr() & 0xf0)) return -1;
    return v;
  }

  /** INTA: moves `vector` from IRR to ISR (SDM 11.8.4). */
  acknowledge(vector: number): void {
    const i = vector >>> 5;
    const bit = 1 << (vector & 31);
    this.regs[(R.APIC_IRR >> 2) + i * 4]! &= ~bit;
    this.regs[(R.APIC_ISR >> 2) + i * 4]! |= bit;
  }

  /** CR8 reads TPR[7:4] (SDM 10.8.6.1). */
  get cr8(): number {
    return (this.reg(R.APIC_TASKPRI) >>> 4) & 0xf;
  }
  set cr8(v: number) {
    this.setReg(R.APIC_TASKPRI, (v & 0xf) << 4);
  }

  /** KVM's kvm_apic_accept_pic_intr(): PIC output reaches the CPU if the APIC is off or LINT0 is ExtINT. */
  acceptsPicInterrupt(): boolean {
    if (!this.hwEnabled) return true;
    const lvt0 = this.reg(R.APIC_LVT0);
    return (lvt0 & R.LVT_MASKED) === 0 && (lvt0 & R.LVT_DELIVERY_MODE) >>> 8 === DeliveryMode.ExtInt;
  }

  // ---- receiving ----

  private bitSet(base: number, vector: number, on: boolean): void {
    const idx = (base >> 2) + (vector >>> 5) * 4;
    if (on) this.regs[idx]! |= 1 << (vector & 31);
    else this.regs[idx]! &= ~(1 << (vector & 31));
  }
  private bitTest(base: number, vector: number): boolean {
    return (this.regs[(base >> 2) + (vector >>> 5) * 4]! & (1 << (vector & 31))) !== 0;
  }

  /** Does `msg` (without shorthand) address this APIC? SDM 11.6.2.1 / 11.6.2.2 / 11.12.10. */
  matches(msg: ApicMessage): boolean {
    if (!this.hwEnabled) return false;
    const x2 = this.x2apicMode;
    const bcast = x2 ? 0xffffffff : 0xff;
    if (msg.dest >>> 0 === bcast || (!x2 && msg.dest === 0xff)) return true;
    if (!msg.logical) return msg.dest >>> 0 === this.apicId;
    const ldr = this.reg(R.APIC_LDR);
    if (x2) return msg.dest >>> 16 === ldr >>> 16 && (msg.dest & ldr & 0xffff) !== 0;
    const logicalId = ldr >>> 24;
    if (this.reg(R.APIC_DFR) >>> 28 === R.DFR_FLAT) return (logicalId & msg.dest) !== 0;
    return logicalId >>> 4 === msg.dest >>> 4 && (logicalId & msg.dest & 0xf) !== 0;
  }

  /** Accepts a message routed here by the bus. Returns true if accepted. */
  accept(msg: ApicMessage): boolean {
    if (!this.hwEnabled) return false;
    switch (msg.deliveryMode) {
      case DeliveryMode.Fixed:
      case DeliveryMode.LowestPriority:
        // KVM __apic_accept_irq: a software-disabled APIC drops fixed interrupts.
        if (!this.swEnabled) return false;
        if (msg.vector < 16) {
          this.error(R.ESR_RECEIVE_ILLEGAL_VECTOR);
          return false;
        }
        this.bitSet(R.APIC_TMR, msg.vector, msg.levelTriggered);
        this.bitSet(R.APIC_IRR, msg.vector, true);
        break;
      case DeliveryMode.Nmi:
        this.nmiPending++;
        break;
      case DeliveryMode.Init:
        if (!msg.assert && msg.levelTriggered) return false; // INIT level de-assert: no-op on P4+ (SDM 11.6.1)
        this.pendingEvents |= PENDING_INIT;
        break;
      case DeliveryMode.StartUp:
        this.sipiVector = msg.vector;
        this.pendingEvents |= PENDING_SIPI;
        break;
      case DeliveryMode.ExtInt:
        // The vector comes from the PIC's INTA cycle; the irqchip polls the PIC for this vCPU.
        break;
      default:
        return false; // SMI: no SMM here
    }
    this.host.kick();
    return true;
  }

  /** Records an APIC error and raises the LVT error interrupt (SDM 11.5.3). */
  private error(bits: number): void {
    this.esrPending |= bits;
    const lvt = this.reg(R.APIC_LVTERR);
    if (!(lvt & R.LVT_MASKED)) this.localInterrupt(lvt & 0xff);
  }

  /** An interrupt from one of this APIC's own sources (timer, error): fixed, edge. */
  private localInterrupt(vector: number): void {
    if (!this.swEnabled) return;
    if (vector < 16) {
      this.esrPending |= R.ESR_RECEIVE_ILLEGAL_VECTOR;
      return;
    }
    this.bitSet(R.APIC_TMR, vector, false);
    this.bitSet(R.APIC_IRR, vector, true);
    this.host.kick();
  }

  /** EOI (SDM 11.8.5): retire the highest in-service vector; a level vector is broadcast. */
  eoi(): void {
    const v = highestBit(this.regs, R.APIC_ISR >> 2);
    if (v < 0) return;
    this.bitSet(R.APIC_ISR, v, false);
    if (this.bitTest(R.APIC_TMR, v)) this.host.eoiBroadcast(v);
  }

  // ---- sending ----

  /** Sends the IPI described by ICR (low, high). SDM 11.6.1. */
  private sendIpi(lo: number, hi: number): void {
    const msg: ApicMessage = {
      vector: lo & 0xff,
      deliveryMode: (lo >>> 8) & 7,
      logical: (lo & R.ICR_DEST_LOGICAL) !== 0,
      dest: this.x2apicMode ? hi >>> 0 : hi >>> 24,
      levelTriggered: (lo & R.ICR_TRIGGER_LEVEL) !== 0,
      assert: (lo & R.ICR_LEVEL_ASSERT) !== 0,
      shorthand: (lo >>> R.ICR_SHORTHAND_SHIFT) & 3,
    };
    const fixed = msg.deliveryMode === DeliveryMode.Fixed || msg.deliveryMode === DeliveryMode.LowestPriority;
    if (fixed && msg.vector < 16) {
      this.error(R.ESR_SEND_ILLEGAL_VECTOR);
      return;
    }
    this.host.bus.deliver(msg, this.apicId);
  }

  // ---- timer ----

  private timerMode(): number {
    return this.reg(R.APIC_LVTT) & R.LVT_TIMER_MODE_MASK;
  }

  /** VM time of the next timer expiry, or +Infinity. */
  nextDeadlineNs(): number {
    return this.timerDeadlineNs;
  }

  /** Fires the timer if it expired by `now` (SDM 11.5.4). Returns true if it fired. */
  tick(now: number): boolean {
    if (now < this.timerDeadlineNs) return false;
    const lvtt = this.reg(R.APIC_LVTT);
    const mode = lvtt & R.LVT_TIMER_MODE_MASK;
    if (mode === R.LVT_TIMER_PERIODIC && this.timerPeriodNs > 0) {
      // Reload from the initial count; periods missed while nobody looked collapse into one IRR bit.
      const missed = Math.floor((now - this.timerDeadlineNs) / this.timerPeriodNs) + 1;
      this.timerDeadlineNs += missed * this.timerPeriodNs;
    } else {
      this.timerDeadlineNs = Number.POSITIVE_INFINITY;
      if (mode === R.LVT_TIMER_TSCDEADLINE) this.tscDeadlineValue = 0; // SDM 11.5.4.1: cleared on fire
    }
    // A masked LVT still counts but raises nothing (SDM 11.5.1, mask bit).
    if (!(lvtt & R.LVT_MASKED)) this.localInterrupt(lvtt & 0xff);
    return true;
  }

  private startCountdown(now: number): void {
    const tmict = this.reg(R.APIC_TMICT);
    if (tmict === 0 || this.timerMode() === R.LVT_TIMER_TSCDEADLINE) {
      this.timerDeadlineNs = Number.POSITIVE_INFINITY;
      this.timerPeriodNs = 0;
      return;
    }
    let period = tmict * R.tdcrDivisor(this.reg(R.APIC_TDCR)) * R.APIC_BUS_CYCLE_NS;
    if (this.timerMode() === R.LVT_TIMER_PERIODIC) period = Math.max(period, R.MIN_PERIODIC_NS);
    this.timerPeriodNs = period;
    this.timerDeadlineNs = now + period;
  }

  /** TMCCT: counts left (SDM 11.5.4: counts down to 0, periodic reloads). */
  private currentCount(): number {
    if (this.timerMode() === R.LVT_TIMER_TSCDEADLINE || this.timerDeadlineNs === Number.POSITIVE_INFINITY)
      return 0;
    const remaining = this.timerDeadlineNs - this.host.clock.nowNs();
    if (remaining <= 0) return 0;
    const perCount = R.tdcrDivisor(this.reg(R.APIC_TDCR)) * R.APIC_BUS_CYCLE_NS;
    return Math.min(Math.ceil(remaining / perCount), this.reg(R.APIC_TMICT)) >>> 0;
  }

  private armTscDeadline(): void {
    this.timerDeadlineNs =
      this.tscDeadlineValue === 0 ? Number.POSITIVE_INFINITY : this.host.nsAtTsc(this.tscDeadlineValue);
  }

  // ---- register access ----

  /** Reads a register by xAPIC offset; `undefined` for an offset that does not exist. */
  readReg(offset: number): number | undefined {
    switch (offset) {
      case R.APIC_PROCPRI:
        return this.ppr();
      case R.APIC_TMCCT:
        return this.currentCount();
      case R.APIC_EOI:
      case R.APIC_SELF_IPI:
      case R.APIC_RRR:
      case R.APIC_ARBPRI:
        return 0;
      case R.APIC_LVTCMCI:
        return undefined; // max LVT is 5: no CMCI
    }
    if (offset >= 0x400 || offset & 0xf || offset < R.APIC_ID) return undefined;
    if (offset >= 0x3a0 && offset <= 0x3d0) return undefined;
    if (offset === 0x40 || offset === 0x50 || offset === 0x60 || offset === 0x70) return undefined;
    if (offset >= 0x290 && offset <= 0x2e0) return undefined;
    return this.reg(offset);
  }

  /** Writes a register by xAPIC offset (the x2APIC checks are done by the MSR path). */
  private writeReg(offset: number, v: number): void {
    const now = this.host.clock.nowNs();
    switch (offset) {
      case R.APIC_ID:
        if (!this.x2apicMode) this.setReg(R.APIC_ID, v & 0xff000000);
        return;
      case R.APIC_TASKPRI:
        this.setReg(offset, v & 0xff);
        return;
      case R.APIC_EOI:
        this.eoi();
        return;
      case R.APIC_LDR:
        if (!this.x2apicMode) this.setReg(offset, v & 0xff000000);
        return;
      case R.APIC_DFR:
        if (!this.x2apicMode) this.setReg(offset, (v | 0x0fffffff) >>> 0);
        return;
      case R.APIC_SPIV: {
        this.setReg(offset, v & R.SPIV_WRITABLE);
        // SDM 11.4.7.2: software-disabling masks every LVT.
        if (!(v & R.SPIV_APIC_ENABLED)) for (const o of R.LVT_OFFSETS) this.regs[o >> 2]! |= R.LVT_MASKED;
        return;
      }
      case R.APIC_ESR:
        // SDM 11.5.3: a write loads ESR with the errors found since the previous write.
        this.setReg(offset, this.esrPending);
        this.esrPending = 0;
        return;
      case R.APIC_ICR:
        this.setReg(offset, v & R.ICR_LOW_WRITABLE);
        this.sendIpi(v, this.reg(R.APIC_ICR2));
        return;
      case R.APIC_ICR2:
        this.setReg(offset, this.x2apicMode ? v : v & 0xff000000);
        return;
      case R.APIC_LVTT: {
        let nv = v & R.LVT_WRITABLE[offset]!;
        if (!this.host.tscDeadline) nv &= ~R.LVT_TIMER_TSCDEADLINE;
        if ((nv & R.LVT_TIMER_MODE_MASK) === R.LVT_TIMER_MODE_MASK) nv &= ~R.LVT_TIMER_TSCDEADLINE; // reserved mode 3
        if (!this.swEnabled) nv |= R.LVT_MASKED;
        const oldMode = this.timerMode();
        this.setReg(offset, nv);
        const newMode = nv & R.LVT_TIMER_MODE_MASK;
        // KVM apic_update_lvtt: switching to or from TSC-deadline disarms the timer.
        if ((oldMode === R.LVT_TIMER_TSCDEADLINE) !== (newMode === R.LVT_TIMER_TSCDEADLINE)) {
          this.setReg(R.APIC_TMICT, 0);
          this.timerDeadlineNs = Number.POSITIVE_INFINITY;
          this.timerPeriodNs = 0;
          this.tscDeadlineValue = 0;
        } else if (oldMode !== newMode && this.timerPeriodNs > 0) {
          this.startCountdown(now);
        }
        return;
      }
      case R.APIC_LVTTHMR:
      case R.APIC_LVTPC:
      case R.APIC_LVT0:
      case R.APIC_LVT1:
      case R.APIC_LVTERR: {
        const old = this.reg(offset);
        let nv = (v & R.LVT_WRITABLE[offset]!) | (old & R.LVT_REMOTE_IRR);
        if (!this.swEnabled) nv |= R.LVT_MASKED;
        this.setReg(offset, nv);
        return;
      }
      case R.APIC_TMICT:
        if (this.timerMode() === R.LVT_TIMER_TSCDEADLINE) return; // SDM 11.5.4.1: ignored in deadline mode
        this.setReg(offset, v >>> 0);
        this.startCountdown(now);
        return;
      case R.APIC_TDCR: {
        const left = this.currentCount();
        this.setReg(offset, v & 0xb);
        // Keep the counts left, at the new rate (KVM update_target_expiration).
        if (
          this.timerDeadlineNs !== Number.POSITIVE_INFINITY &&
          this.timerMode() !== R.LVT_TIMER_TSCDEADLINE
        ) {
          const div = R.tdcrDivisor(v);
          let period = this.reg(R.APIC_TMICT) * div * R.APIC_BUS_CYCLE_NS;
          if (this.timerMode() === R.LVT_TIMER_PERIODIC) period = Math.max(period, R.MIN_PERIODIC_NS);
          this.timerPeriodNs = period;
          this.timerDeadlineNs = now + left * div * R.APIC_BUS_CYCLE_NS;
        }
        return;
      }
      case R.APIC_SELF_IPI:
        if (this.x2apicMode) this.localInterruptFixedEdge(v & 0xff);
        return;
      default:
        return; // read-only or reserved: ignored in xAPIC mode
    }
  }

  private localInterruptFixedEdge(vector: number): void {
    this.accept({
      vector,
      deliveryMode: DeliveryMode.Fixed,
      logical: false,
      dest: this.apicId,
      levelTriggered: false,
      assert: true,
      shorthand: Shorthand.Self,
    });
  }

  /**
   * xAPIC MMIO read at page offset `offset` (KVM lapic_mmio_read: the access must stay inside one
   * dword; reads of missing registers return 0).
   */
  mmioRead(offset: number, size: number): number {
    const aligned = offset & 0xff0;
    const within = offset & 0xf;
    if (within + size > 4 || offset >= R.KVM_APIC_REG_SIZE) return 0;
    const v = this.readReg(aligned) ?? 0;
    const shifted = v >>> (within * 8);
    return size >= 4 ? shifted >>> 0 : shifted & ((1 << (size * 8)) - 1);
  }

  /** xAPIC MMIO write: only aligned 32-bit writes reach a register (SDM 11.4.1), others are dropped. */
  mmioWrite(offset: number, size: number, value: number): void {
    if (size !== 4 || offset & 0xf || offset >= R.KVM_APIC_REG_SIZE) return;
    this.writeReg(offset, value >>> 0);
  }

  // ---- MSRs ----

  /** Handles RDMSR for APIC MSRs. Writes `[lo, hi]` into `out`; false means #GP (or not an APIC MSR). */
  rdmsr(index: number, out: Uint32Array): boolean {
    if (index === R.MSR_IA32_APICBASE) {
      out[0] = this.apicBase % 2 ** 32;
      out[1] = Math.floor(this.apicBase / 2 ** 32);
      return true;
    }
    if (index === R.MSR_IA32_TSC_DEADLINE) {
      if (!this.host.tscDeadline) return false;
      // SDM 11.5.4.1: reads 0 outside TSC-deadline mode.
      const v = this.timerMode() === R.LVT_TIMER_TSCDEADLINE ? this.tscDeadlineValue : 0;
      out[0] = v % 2 ** 32;
      out[1] = Math.floor(v / 2 ** 32);
      return true;
    }
    if (index < R.X2APIC_MSR_BASE || index > 0x8ff || !this.x2apicMode) return false;
    const offset = (index - R.X2APIC_MSR_BASE) << 4;
    // SDM Table 11-6: registers without an x2APIC MSR, and write-only ones, #GP on read.
    if (
      offset === R.APIC_ARBPRI ||
      offset === R.APIC_RRR ||
      offset === R.APIC_DFR ||
      offset === R.APIC_ICR2 ||
      offset === R.APIC_EOI ||
      offset === R.APIC_SELF_IPI
    ) {
      return false;
    }
    if (offset === R.APIC_ICR) {
      out[0] = this.reg(R.APIC_ICR);
      out[1] = this.reg(R.APIC_ICR2);
      return true;
    }
    const v = this.readReg(offset);
    if (v === undefined) return false;
    out[0] = v;
    out[1] = 0;
    return true;
  }

  /** Handles WRMSR for APIC MSRs; false means #GP. */
  wrmsr(index: number, lo: number, hi: number, hostInitiated = false): boolean {
    lo >>>= 0;
    hi >>>= 0;
    if (index === R.MSR_IA32_APICBASE) return this.setApicBase(hi * 2 ** 32 + lo, hostInitiated);
    if (index === R.MSR_IA32_TSC_DEADLINE) {
      if (!this.host.tscDeadline) return false;
      if (this.timerMode() !== R.LVT_TIMER_TSCDEADLINE) return true; // ignored outside the mode
      this.tscDeadlineValue = hi * 2 ** 32 + lo;
      this.armTscDeadline();
      return true;
    }
    if (index < R.X2APIC_MSR_BASE || index > 0x8ff || !this.x2apicMode) return false;
    const offset = (index - R.X2APIC_MSR_BASE) << 4;
    if (offset === R.APIC_ICR) {
      // SDM 11.12.9: one 64-bit write sends; destination in bits 63:32.
      if (lo & ~R.ICR_LOW_WRITABLE) return false;
      this.setReg(R.APIC_ICR2, hi);
      this.setReg(R.APIC_ICR, lo);
      this.sendIpi(lo, hi);
      return true;
    }
    if (hi !== 0) return false;
    switch (offset) {
      case R.APIC_TASKPRI:
      case R.APIC_SELF_IPI:
        if (lo & ~0xff) return false;
        break;
      case R.APIC_EOI:
      case R.APIC_ESR:
        if (lo !== 0) return false; // SDM 11.12.1.2: non-zero writes #GP
        break;
      case R.APIC_SPIV:
        if (lo & ~R.SPIV_WRITABLE) return false;
        break;
      case R.APIC_TDCR:
        if (lo & ~0xb) return false;
        break;
      case R.APIC_TMICT:
        break;
      case R.APIC_LVTT:
      case R.APIC_LVTTHMR:
      case R.APIC_LVTPC:
      case R.APIC_LVT0:
      case R.APIC_LVT1:
      case R.APIC_LVTERR:
        if (lo & ~(R.LVT_WRITABLE[offset]! | R.LVT_DELIVERY_STATUS | R.LVT_REMOTE_IRR)) return false;
        break;
      default:
        return false; // read-only or absent in x2APIC mode
    }
    this.writeReg(offset, lo);
    return true;
  }

  // ---- state ----

  save(): LapicState {
    const regs = Array.from(this.regs);
    regs[R.APIC_TMCCT >> 2] = this.currentCount();
    regs[R.APIC_PROCPRI >> 2] = this.ppr(); // KVM keeps PPR computed in the page (apic_update_ppr)
    regs[R.APIC_ESR >> 2] = this.reg(R.APIC_ESR);
    const remaining =
      this.timerDeadlineNs === Number.POSITIVE_INFINITY
        ? -1
        : Math.max(0, this.timerDeadlineNs - this.host.clock.nowNs());
    return {
      regs,
      apicBase: this.apicBase,
      timerRemainingNs: this.timerMode() === R.LVT_TIMER_TSCDEADLINE ? -1 : remaining,
      tscDeadline: this.tscDeadlineValue,
      pendingEvents: this.pendingEvents,
      sipiVector: this.sipiVector,
      nmiPending: this.nmiPending,
    };
  }

  /** Restores a saved state (KVM_SET_LAPIC plus the rest); the page must hold 256 dwords. */
  restore(s: LapicState): boolean {
    if (!Array.isArray(s.regs) || s.regs.length !== R.KVM_APIC_REG_SIZE / 4) return false;
    this.apicBase = s.apicBase;
    for (let i = 0; i < s.regs.length; i++) this.regs[i] = s.regs[i]! >>> 0;
    this.setReg(R.APIC_LVR, R.APIC_VERSION);
    if (this.x2apicMode) {
      this.setReg(R.APIC_ID, this.id);
      this.setReg(R.APIC_LDR, this.x2apicLdr());
    }
    this.setReg(R.APIC_TMCCT, 0);
    this.tscDeadlineValue = s.tscDeadline;
    this.pendingEvents = s.pendingEvents & (PENDING_INIT | PENDING_SIPI);
    this.sipiVector = s.sipiVector & 0xff;
    this.nmiPending = s.nmiPending;
    const now = this.host.clock.nowNs();
    if (this.timerMode() === R.LVT_TIMER_TSCDEADLINE) {
      this.armTscDeadline();
    } else {
      this.startCountdown(now);
      if (s.timerRemainingNs >= 0 && this.timerPeriodNs > 0) this.timerDeadlineNs = now + s.timerRemainingNs;
      else if (s.timerRemainingNs < 0) this.timerDeadlineNs = Number.POSITIVE_INFINITY;
    }
    return true;
  }

  /**
   * KVM_SET_LAPIC over the bare 1 KiB page (no timer or pending state): like KVM, restarts the
   * timer from TMICT and takes the current count from the page.
   */
  restorePage(page: Uint32Array): void {
    const tmcct = page[R.APIC_TMCCT >> 2]!;
    const div = R.tdcrDivisor(page[R.APIC_TDCR >> 2]!);
    this.restore({
      regs: Array.from(page),
      apicBase: this.apicBase,
      timerRemainingNs: tmcct > 0 ? tmcct * div * R.APIC_BUS_CYCLE_NS : -1,
      tscDeadline: this.tscDeadlineValue,
      pendingEvents: this.pendingEvents,
      sipiVector: this.sipiVector,
      nmiPending: this.nmiPending,
    });
  }
}
