/**
 * Dual 8259A programmable interrupt controller (master at 0x20/0x21, slave at 0xa0/0xa1, cascaded
 * on master IR2) with the PIIX edge/level control registers (ELCR, 0x4d0/0x4d1).
 *
 * Sources: Intel 8259A datasheet (ICW1-4, OCW1-3, priority rotation, special mask, poll); Intel
 * PIIX4 datasheet 3.1.2 (ELCR; LTIM in ICW1 is ignored, ELCR selects edge/level per line).
 * Cross-checked with Linux arch/x86/kernel/i8259.c (init_8259A) and KVM arch/x86/kvm/i8259.c.
 * The state fields are those of `struct kvm_pic_state` (KVM_GET_IRQCHIP chips 0 and 1).
 */

/** Edge/level-detect and service state of one 8259A, as `struct kvm_pic_state`. */
export interface PicChipState {
  /** Line levels seen at the last sample (edge detection). */
  lastIrr: number;
  irr: number;
  imr: number;
  isr: number;
  /** Rotation: the IR with the highest priority is `priorityAdd` (0 after ICW1: IR0 highest). */
  priorityAdd: number;
  /** ICW2: vector base T7-T3. */
  irqBase: number;
  /** OCW3 RIS: 1 reads ISR, 0 reads IRR. */
  readRegSelect: number;
  /** OCW3 P: the next read is a poll. */
  poll: number;
  specialMask: number;
  /** 0: ready for OCW1; 1: expects ICW2; 2: ICW3; 3: ICW4. */
  initState: number;
  autoEoi: number;
  rotateOnAutoEoi: number;
  specialFullyNestedMode: number;
  init4: number;
  elcr: number;
  /** Lines that may be level-triggered (PIIX: IRQ0, 1, 2, 8 and 13 are edge-only). */
  elcrMask: number;
  /** ICW1 SNGL: no ICW3 in the init sequence. */
  singleMode: number;
  /** ICW3 as written (slave mask on the master, cascade id on the slave). */
  icw3: number;
}

/** Saved state of both chips. */
export interface PicState {
  master: PicChipState;
  slave: PicChipState;
}

/** Port numbers. */
export const PIC_MASTER_CMD = 0x20;
export const PIC_MASTER_DATA = 0x21;
export const PIC_SLAVE_CMD = 0xa0;
export const PIC_SLAVE_DATA = 0xa1;
export const PIC_ELCR_MASTER = 0x4d0;
export const PIC_ELCR_SLAVE = 0x4d1;

/** Command-port bits. */
const ICW1_SELECT = 0x10; // D4=1: this write is ICW1
const ICW1_IC4 = 0x01; // ICW4 needed
const ICW1_SNGL = 0x02; // single (no cascade)
const OCW3_SELECT = 0x08; // D4=0, D3=1: OCW3 (D3=0: OCW2)
const OCW3_POLL = 0x04;
const OCW3_RR = 0x02; // act on RIS
const OCW3_ESMM = 0x40; // act on SMM
const ICW4_AEOI = 0x02;
const ICW4_SFNM = 0x10;
const CASCADE_IR = 2;

function freshChip(elcrMask: number): PicChipState {
  return {
    lastIrr: 0,
    irr: 0,
    imr: 0,
    isr: 0,
    priorityAdd: 0,
    irqBase: 0,
    readRegSelect: 0,
    poll: 0,
    specialMask: 0,
    initState: 0,
    autoEoi: 0,
    rotateOnAutoEoi: 0,
    specialFullyNestedMode: 0,
    init4: 0,
    elcr: 0,
    elcrMask,
    singleMode: 0,
    icw3: 0,
  };
}

/** Priority level (0 = highest) of the highest-priority bit in `mask`, or 8 if none. */
function priorityOf(s: PicChipState, mask: number): number {
  if ((mask & 0xff) === 0) return 8;
  let p = 0;
  while ((mask & (1 << ((p + s.priorityAdd) & 7))) === 0) p++;
  return p;
}

/**
 * The two cascaded 8259As. `output` is the master's INT pin; the irqchip feeds it to LAPIC LINT0
 * (ExtINT) and calls {@link acknowledge} for the INTA cycle.
 */
export class DualPic {
  private m: PicChipState = freshChip(0xf8);
  private s: PicChipState = freshChip(0xde);
  /** The master's INT output. */
  output = false;

  constructor(private readonly onOutput: (level: boolean) => void = () => {}) {}

  /**
   * Drives input line `irq` (0-15) to `level`. Edge lines latch IRR on a rising edge. Returns
   * KVM's pic_set_irq1() status: 0 when an assertion coalesced into an already-set IRR bit, else 1.
   */
  setIrq(irq: number, level: boolean): number {
    if (irq < 0 || irq > 15) return -1;
    const ret = this.setChipIrq(irq < 8 ? this.m : this.s, irq & 7, level);
    this.update();
    return ret;
  }

  /** True when the line is currently unmasked on its chip (and, for the slave, the cascade too). */
  isMasked(irq: number): boolean {
    if (irq < 8) return (this.m.imr & (1 << irq)) !== 0;
    return (this.s.imr & (1 << (irq & 7))) !== 0 || (this.m.imr & (1 << CASCADE_IR)) !== 0;
  }

  /**
   * INTA cycle: returns the vector and moves the request to in-service. With nothing pending the
   * 8259A answers IR7 without setting ISR (datasheet "spurious interrupt"), on the slave IR15.
   */
  acknowledge(): number {
    const m = this.m;
    let irq = this.chipIrq(m, true);
    let vector: number;
    if (irq >= 0) {
      this.intack(m, irq);
      if (irq === CASCADE_IR) {
        const irq2 = this.chipIrq(this.s, false);
        if (irq2 >= 0) {
          this.intack(this.s, irq2);
          vector = this.s.irqBase + irq2;
        } else {
          vector = this.s.irqBase + 7; // spurious IRQ15; master ISR bit 2 stays set
        }
      } else {
        vector = m.irqBase + irq;
      }
    } else {
      irq = 7;
      vector = m.irqBase + 7; // spurious IRQ7
    }
    this.update();
    return vector;
  }

  /** Port read (one byte; wider reads repeat the byte as the ISA bus would not, so use size 1). */
  ioRead(port: number): number {
    switch (port) {
      case PIC_MASTER_CMD:
      case PIC_SLAVE_CMD: {
        const c = port === PIC_MASTER_CMD ? this.m : this.s;
        if (c.poll) return this.pollRead(c);
        return c.readRegSelect ? c.isr : c.irr;
      }
      case PIC_MASTER_DATA:
      case PIC_SLAVE_DATA: {
        const c = port === PIC_MASTER_DATA ? this.m : this.s;
        if (c.poll) return this.pollRead(c);
        return c.imr;
      }
      case PIC_ELCR_MASTER:
        return this.m.elcr;
      case PIC_ELCR_SLAVE:
        return this.s.elcr;
      default:
        return 0xff;
    }
  }

  /** Port write of one byte. Unknown ports are ignored. */
  ioWrite(port: number, value: number): void {
    const v = value & 0xff;
    switch (port) {
      case PIC_MASTER_CMD:
        this.writeCmd(this.m, v);
        return;
      case PIC_SLAVE_CMD:
        this.writeCmd(this.s, v);
        return;
      case PIC_MASTER_DATA:
        this.writeData(this.m, v);
        return;
      case PIC_SLAVE_DATA:
        this.writeData(this.s, v);
        return;
      case PIC_ELCR_MASTER:
        this.m.elcr = v & this.m.elcrMask;
        return;
      case PIC_ELCR_SLAVE:
        this.s.elcr = v & this.s.elcrMask;
        return;
    }
  }

  /** True when the port belongs to this device. */
  static handlesPort(port: number): boolean {
    return (
      port === PIC_MASTER_CMD ||
      port === PIC_MASTER_DATA ||
      port === PIC_SLAVE_CMD ||
      port === PIC_SLAVE_DATA ||
      port === PIC_ELCR_MASTER ||
      port === PIC_ELCR_SLAVE
    );
  }

  save(): PicState {
    return { master: { ...this.m }, slave: { ...this.s } };
  }

  restore(state: PicState): void {
    this.m = sanitize(state.master, 0xf8);
    this.s = sanitize(state.slave, 0xde);
    this.update();
  }

  private setChipIrq(c: PicChipState, irq: number, level: boolean): number {
    const mask = 1 << irq;
    let ret = 1;
    if (c.elcr & mask) {
      // Level: IRR follows the line.
      if (level) {
        ret = c.irr & mask ? 0 : 1;
        c.irr |= mask;
        c.lastIrr |= mask;
      } else {
        c.irr &= ~mask;
        c.lastIrr &= ~mask;
      }
    } else if (level) {
      if ((c.lastIrr & mask) === 0) {
        ret = c.irr & mask ? 0 : 1; // rising edge
        c.irr |= mask;
      }
      c.lastIrr |= mask;
    } else {
      c.lastIrr &= ~mask;
    }
    return ret;
  }

  /** The IR this chip would present (after masks and priority against ISR), or -1. */
  private chipIrq(c: PicChipState, isMaster: boolean): number {
    const req = priorityOf(c, c.irr & ~c.imr);
    if (req === 8) return -1;
    let inService = c.isr;
    // Special fully nested mode: a slave request may interrupt the slave's in-service routine.
    if (isMaster && c.specialFullyNestedMode) inService &= ~(1 << CASCADE_IR);
    // Special mask mode: masked in-service levels do not block lower priorities (datasheet OCW3 SMM).
    if (c.specialMask) inService &= ~c.imr;
    const cur = priorityOf(c, inService);
    return req < cur ? (req + c.priorityAdd) & 7 : -1;
  }

  private intack(c: PicChipState, irq: number): void {
    const mask = 1 << irq;
    if (c.autoEoi) {
      if (c.rotateOnAutoEoi) c.priorityAdd = (irq + 1) & 7;
    } else {
      c.isr |= mask;
    }
    // Edge requests are consumed by INTA; a level request stays until the line drops.
    if (!(c.elcr & mask)) c.irr &= ~mask;
  }

  private update(): void {
    // The slave's INT drives master IR2, an edge-triggered input (ELCR bit 2 is fixed at 0). As in
    // KVM's pic_update_irq() (and checked against it by test/kvm-diff.test.ts), a pending slave
    // request pulses the line at every update, so the master re-latches IR2 whenever the slave
    // has something to present and a request behind an in-service cascade is not lost.
    if (this.chipIrq(this.s, false) >= 0) {
      this.setChipIrq(this.m, CASCADE_IR, true);
      this.setChipIrq(this.m, CASCADE_IR, false);
    }
    const out = this.chipIrq(this.m, true) >= 0;
    if (out !== this.output) {
      this.output = out;
      this.onOutput(out);
    }
  }

  /**
   * Poll command (OCW3 P=1): the next read acts as INTA for this chip and returns
   * 1000_0LLL with the level, or 0 when nothing is requesting (datasheet "Poll Command").
   * KVM clears ISR on a poll; the datasheet sets it, as here, and software then sends EOI.
   */
  private pollRead(c: PicChipState): number {
    c.poll = 0;
    const irq = this.chipIrq(c, c === this.m);
    if (irq < 0) {
      this.update();
      return 0;
    }
    this.intack(c, irq);
    this.update();
    return 0x80 | irq;
  }

  private writeCmd(c: PicChipState, v: number): void {
    if (v & ICW1_SELECT) {
      // ICW1: IMR cleared, IR7 lowest priority, special mask off, read IRR, edge detect reset
      // (datasheet "Initialization Command Words"); LTIM (D3) is ignored: ELCR rules (PIIX4).
      c.init4 = v & ICW1_IC4;
      c.singleMode = (v & ICW1_SNGL) >> 1;
      c.lastIrr = 0;
      c.irr &= c.elcr;
      c.imr = 0;
      c.isr = 0;
      c.priorityAdd = 0;
      c.specialMask = 0;
      c.readRegSelect = 0;
      c.poll = 0;
      if (!c.init4) {
        c.specialFullyNestedMode = 0;
        c.autoEoi = 0;
      }
      c.initState = 1;
    } else if (v & OCW3_SELECT) {
      if (v & OCW3_POLL) c.poll = 1;
      if (v & OCW3_RR) c.readRegSelect = v & 1;
      if (v & OCW3_ESMM) c.specialMask = (v >> 5) & 1;
    } else {
      this.ocw2(c, v);
    }
    this.update();
  }

  /** OCW2: R, SL, EOI bits (D7-D5) and level L2-L0. */
  private ocw2(c: PicChipState, v: number): void {
    const cmd = v >> 5;
    switch (cmd) {
      case 0: // rotate in AEOI mode (clear)
      case 4: // rotate in AEOI mode (set)
        c.rotateOnAutoEoi = cmd >> 2;
        break;
      case 1: // non-specific EOI
      case 5: {
        // rotate on non-specific EOI
        const p = priorityOf(c, c.isr);
        if (p !== 8) {
          const irq = (p + c.priorityAdd) & 7;
          c.isr &= ~(1 << irq);
          if (cmd === 5) c.priorityAdd = (irq + 1) & 7;
        }
        break;
      }
      case 3: // specific EOI
        c.isr &= ~(1 << (v & 7));
        break;
      case 6: // set priority: L becomes the lowest
        c.priorityAdd = ((v & 7) + 1) & 7;
        break;
      case 7: // rotate on specific EOI
        c.isr &= ~(1 << (v & 7));
        c.priorityAdd = ((v & 7) + 1) & 7;
        break;
      default: // 2: no operation
        break;
    }
  }

  private writeData(c: PicChipState, v: number): void {
    switch (c.initState) {
      case 0: // OCW1
        c.imr = v;
        break;
      case 1: // ICW2 (8086 mode: T7-T3)
        c.irqBase = v & 0xf8;
        c.initState = c.singleMode ? (c.init4 ? 3 : 0) : 2;
        break;
      case 2: // ICW3
        c.icw3 = v;
        c.initState = c.init4 ? 3 : 0;
        break;
      default: // ICW4
        c.specialFullyNestedMode = (v & ICW4_SFNM) >> 4;
        c.autoEoi = (v & ICW4_AEOI) >> 1;
        c.initState = 0;
        break;
    }
    this.update();
  }
}

function sanitize(s: PicChipState, elcrMask: number): PicChipState {
  const b = (x: unknown) => (typeof x === "number" ? x & 0xff : 0);
  const f = (x: unknown) => (x ? 1 : 0);
  return {
    lastIrr: b(s.lastIrr),
    irr: b(s.irr),
    imr: b(s.imr),
    isr: b(s.isr),
    priorityAdd: b(s.priorityAdd) & 7,
    irqBase: b(s.irqBase) & 0xf8,
    readRegSelect: f(s.readRegSelect),
    poll: f(s.poll),
    specialMask: f(s.specialMask),
    initState: Math.min(b(s.initState), 3),
    autoEoi: f(s.autoEoi),
    rotateOnAutoEoi: f(s.rotateOnAutoEoi),
    specialFullyNestedMode: f(s.specialFullyNestedMode),
    init4: f(s.init4),
    elcr: b(s.elcr) & elcrMask,
    elcrMask,
    singleMode: f(s.singleMode),
    icw3: b(s.icw3),
  };
}
