/**
 * Exception and interrupt delivery (SDM Vol. 3 ch. 6): the real-mode IVT, 16/32-bit interrupt and trap
 * gates with privilege changes (and virtual-8086 exits), 64-bit gates with IST, error codes, the
 * benign / contributory / page-fault classes that turn a second fault into #DF, and the triple fault
 * that becomes a shutdown. A fault in the middle of delivery rolls the registers back first, so the
 * second exception sees the state of the first.
 *
 * Task gates in the IDT switch tasks through `taskGate` (exec-task.ts).
 */
import { FAULT, Vec } from "./memory.js";
import { SegCpu } from "./segments.js";
import { AR, CR0, F, Seg } from "./state.js";

/** Event types, numbered as the VMX interruption-information field (SDM Vol. 3 24.8.3). */
export const EventType = {
  EXTERNAL: 0,
  NMI: 2,
  HW_EXCEPTION: 3,
  SOFT_INT: 4,
  PRIV_SOFT_EXCEPTION: 5,
  SOFT_EXCEPTION: 6,
} as const;

const CLASS_BENIGN = 0;
const CLASS_CONTRIBUTORY = 1;
const CLASS_PF = 2;

function excClass(v: number): number {
  if (v === Vec.PF) return CLASS_PF;
  if (v === Vec.DE || (v >= Vec.TS && v <= Vec.GP)) return CLASS_CONTRIBUTORY;
  return CLASS_BENIGN;
}

export class ExcCpu extends SegCpu {
  /** Set when a triple fault (or a fault while delivering #DF) shut the processor down. */
  shutdown = false;
  /** Software interrupts (INT n, INT3, INTO, INT1) delivered so far: a traced one takes no single-step trap. */
  softEvents = 0;
  /** Next-instruction RIP of the current instruction (the return address of traps and INT n). */
  nipLo = 0;
  nipHi = 0;
  /** Scratch for rolling back a delivery that faulted. */
  private readonly rb = new Int32Array(6 * 5 + 8);

  /** Saves segment registers, rSP, CPL and RFLAGS so a multi-step transfer can be undone on a fault. */
  snapshotForRollback(): void {
    const b = this.rb;
    for (let s = 0; s < 6; s++) {
      b[s * 5] = this.segSel[s]!;
      b[s * 5 + 1] = this.segBaseLo[s]!;
      b[s * 5 + 2] = this.segBaseHi[s]!;
      b[s * 5 + 3] = this.segLimit[s]!;
      b[s * 5 + 4] = this.segAttr[s]!;
    }
    b[30] = this.r[8]!;
    b[31] = this.r[9]!;
    b[32] = this.cpl;
    b[33] = this.getRflags();
  }

  /** Undoes the changes since `snapshotForRollback`. */
  rollback(): void {
    const b = this.rb;
    for (let s = 0; s < 6; s++) {
      this.segSel[s] = b[s * 5]!;
      this.segBaseLo[s] = b[s * 5 + 1]!;
      this.segBaseHi[s] = b[s * 5 + 2]!;
      this.segLimit[s] = b[s * 5 + 3]!;
      this.segAttr[s] = b[s * 5 + 4]!;
    }
    this.r[8] = b[30]!;
    this.r[9] = b[31]!;
    this.setRflags(b[33]!);
    this.implicitSup = false;
    this.cpl = b[32]!;
    this.updateMode();
    this.segCacheAll();
    this.updateAccessMasks();
  }

  /**
   * Delivers an event, turning faults during delivery into #DF or a shutdown as SDM Table 6-5 says.
   * `retLo/retHi` is the RIP to push (the faulting instruction for faults, the next one for traps).
   */
  deliverEvent(vec: number, type: number, hasErr: boolean, err: number, retLo: number, retHi: number): void {
    if (type >= EventType.SOFT_INT) this.softEvents++;
    let firstClass = type === EventType.HW_EXCEPTION ? excClass(vec) : CLASS_BENIGN;
    for (let depth = 0; depth < 4; depth++) {
      try {
        this.snapshotForRollback();
        this.deliverOnce(vec, type, hasErr, err, retLo, retHi);
        return;
      } catch (e) {
        // Undo the partial delivery whatever stopped it (a fault, or the translator asking to exit).
        this.rollback();
        if (e !== FAULT) throw e;
        const second = this.faultVec;
        if (second === Vec.PF) {
          this.cr2Lo = this.pfLo;
          this.cr2Hi = this.pfHi;
        }
        if (type === EventType.HW_EXCEPTION && vec === Vec.DF) break;
        const c2 = excClass(second);
        type = EventType.HW_EXCEPTION;
        if (
          (firstClass === CLASS_CONTRIBUTORY && c2 === CLASS_CONTRIBUTORY) ||
          (firstClass === CLASS_PF && c2 !== CLASS_BENIGN)
        ) {
          vec = Vec.DF;
          hasErr = true;
          err = 0;
        } else {
          vec = second;
          hasErr = this.faultHasErr;
          err = this.faultErr;
        }
        firstClass = excClass(vec);
      }
    }
    // SDM 6.15 "Interrupt 8": a fault while delivering #DF is a triple fault; the processor shuts down.
    this.shutdown = true;
  }

  private ext(type: number): number {
    return type === EventType.SOFT_INT || type === EventType.SOFT_EXCEPTION ? 0 : 1;
  }

  private deliverOnce(
    vec: number,
    type: number,
    hasErr: boolean,
    err: number,
    retLo: number,
    retHi: number,
  ): void {
    // Faults (not traps, not software interrupts) push RF=1 so the restarted instruction is not re-trapped (SDM 17.3.1.1).
    let fl = this.getRflags();
    if (type === EventType.HW_EXCEPTION && vec !== Vec.DB && vec !== Vec.BP && vec !== Vec.OF) fl |= F.RF;
    if ((this.cr0 & CR0.PE) === 0) {
      this.deliverReal(vec, fl, retLo);
    } else if (this.efer & 0x400) {
      this.deliverLong(vec, type, hasErr, err, retLo, retHi, fl);
    } else {
      this.deliverProtected(vec, type, hasErr, err, retLo, fl);
    }
    this.halted = false;
  }

  /** Real mode: the IVT (SDM 20.1.4). */
  private deliverReal(vec: number, fl: number, retLo: number): void {
    if (vec * 4 + 3 > this.idtrLimit) this.raise(Vec.GP, 0);
    const a = (this.idtrBaseLo + vec * 4) | 0;
    const ip = this.rd16(a, 0);
    const cs = this.rd16((a + 2) | 0, 0);
    this.push(2, fl & 0xffff, 0);
    this.push(2, this.segSel[Seg.CS]!, 0);
    this.push(2, retLo & 0xffff, 0);
    this.setRflags(fl & ~(F.IF | F.TF | F.AC | F.RF));
    this.loadReal(Seg.CS, cs);
    this.updateMode(); // a new CS base: block links by IP no longer hold
    this.ripLo = ip;
    this.ripHi = 0;
  }

  /** Reads the gate for `vec` into descLo/descHi(/descHi2) and checks type, DPL and presence (SDM 6.12.1). */
  private readGate(vec: number, type: number, wide: boolean): number {
    const ext = this.ext(type);
    const size = wide ? 16 : 8;
    if (vec * size + size - 1 > this.idtrLimit) this.raise(Vec.GP, vec * 8 + 2 + ext);
    const a = (this.idtrBaseLo >>> 0) + vec * size;
    const hi = wide ? (this.idtrBaseHi + (a > 0xffffffff ? 1 : 0)) | 0 : 0;
    this.beginSupervisor();
    this.descLo = this.rd32(a | 0, hi);
    this.descHi = this.rd32((a + 4) | 0, hi);
    this.descHi2 = wide ? this.rd32((a + 8) | 0, hi) : 0;
    this.endSupervisor();
    const gtype = (this.descHi >> 8) & 0x1f;
    const ok = wide
      ? gtype === 0xe || gtype === 0xf
      : gtype === 5 || gtype === 6 || gtype === 7 || gtype === 0xe || gtype === 0xf;
    if (!ok) this.raise(Vec.GP, vec * 8 + 2 + ext);
    // Software interrupts check the gate's DPL against CPL (SDM 6.12.1.1).
    if (
      (type === EventType.SOFT_INT || type === EventType.SOFT_EXCEPTION) &&
      ((this.descHi >> 13) & 3) < this.cpl
    ) {
      this.raise(Vec.GP, vec * 8 + 2);
    }
    if ((this.descHi & 0x8000) === 0) this.raise(Vec.NP, vec * 8 + 2 + ext);
    return gtype;
  }

  /** Checks the gate's target code segment (already read) and returns its DPL. */
  private checkTargetCs(sel: number, ext: number, long: boolean): number {
    if ((sel & 0xfffc) === 0) this.raise(Vec.GP, ext);
    this.readDescriptor(sel, false, Vec.GP);
    const hi = this.descHi;
    const dpl = (hi >> 13) & 3;
    if ((hi & 0x1800) !== 0x1800 || dpl > this.cpl) this.raise(Vec.GP, (sel & 0xfffc) + ext);
    if (long && ((hi & 0x200000) === 0 || (hi & 0x400000) !== 0)) this.raise(Vec.GP, (sel & 0xfffc) + ext);
    if ((hi & 0x8000) === 0) this.raise(Vec.NP, (sel & 0xfffc) + ext);
    return dpl;
  }

  /** Reads `size` bytes at `off` in the current TSS, raising #TS(TR) past its limit. */
  tssRead(off: number, size: number): number {
    if (off + size - 1 > this.segLimit[Seg.TR]! >>> 0) this.raise(Vec.TS, this.segSel[Seg.TR]! & 0xfffc);
    const a = (this.segBaseLo[Seg.TR]! >>> 0) + off;
    const hi = (this.segBaseHi[Seg.TR]! + (a > 0xffffffff ? 1 : 0)) | 0;
    this.beginSupervisor();
    const v = size === 2 ? this.rd16(a | 0, hi) : size === 4 ? this.rd32(a | 0, hi) : this.rd64(a | 0, hi);
    this.endSupervisor();
    return v;
  }

  private deliverProtected(
    vec: number,
    type: number,
    hasErr: boolean,
    err: number,
    retLo: number,
    fl: number,
  ): void {
    const ext = this.ext(type);
    const gtype = this.readGate(vec, type, false);
    if (gtype === 5) {
      // Task gate: a task switch to the TSS it names (SDM 6.12.2).
      this.taskGate(this.descLo >>> 16, retLo, hasErr ? err : -1);
      return;
    }
    const gate32 = (gtype & 8) !== 0;
    const sel = this.descLo >>> 16;
    const off = gate32 ? (this.descLo & 0xffff) | (this.descHi & 0xffff0000) : this.descLo & 0xffff;
    const isTrap = (gtype & 1) !== 0;
    const dpl = this.checkTargetCs(sel, ext, false);
    const conforming = (this.descHi & 0x400) !== 0;
    const csLo = this.descLo;
    const csHi = this.descHi;
    const oldCs = this.segSel[Seg.CS]!;
    const oldSs = this.segSel[Seg.SS]!;
    const oldSp = this.r[8]!;
    const vm = (fl & F.VM) !== 0;
    const psize = gate32 ? 4 : 2;
    if (!conforming && dpl < this.cpl) {
      // Inter-privilege: the new stack comes from the TSS (SDM 6.12.1, 7.2.1).
      const tss32 = (this.segAttr[Seg.TR]! & 8) !== 0;
      const newSp = tss32 ? this.tssRead(4 + dpl * 8, 4) : this.tssRead(2 + dpl * 4, 2);
      const newSs = tss32 ? this.tssRead(8 + dpl * 8, 2) : this.tssRead(4 + dpl * 4, 2);
      if ((newSs & 0xfffc) === 0) this.raise(Vec.TS, ext);
      if ((newSs & 3) !== dpl) this.raise(Vec.TS, (newSs & 0xfffc) + ext);
      this.readDescriptor(newSs, false, Vec.TS);
      const sh = this.descHi;
      if (((sh >> 13) & 3) !== dpl || (sh & 0x1a00) !== 0x1200) this.raise(Vec.TS, (newSs & 0xfffc) + ext);
      if ((sh & 0x8000) === 0) this.raise(Vec.SS, (newSs & 0xfffc) + ext);
      if (vm && dpl !== 0) this.raise(Vec.GP, (sel & 0xfffc) + ext);
      this.flags &= ~F.VM;
      this.cpl = dpl;
      this.loadFromDescriptor(Seg.SS, newSs);
      this.segCacheAll();
      this.updateModeKeepCpl(dpl);
      this.r[8] = newSp;
      this.r[9] = 0;
      if (vm) {
        this.push(psize, this.segSel[Seg.GS]!, 0);
        this.push(psize, this.segSel[Seg.FS]!, 0);
        this.push(psize, this.segSel[Seg.DS]!, 0);
        this.push(psize, this.segSel[Seg.ES]!, 0);
        for (const s of [Seg.GS, Seg.FS, Seg.DS, Seg.ES]) this.loadNull(s, 0);
      }
      this.push(psize, oldSs, 0);
      this.push(psize, oldSp, 0);
    } else if (vm) {
      this.raise(Vec.GP, (sel & 0xfffc) + ext);
    }
    this.push(psize, fl, 0);
    this.push(psize, oldCs, 0);
    this.push(psize, retLo, 0);
    if (hasErr) this.push(psize, err, 0);
    this.descLo = csLo;
    this.descHi = csHi;
    this.loadFromDescriptor(Seg.CS, (sel & 0xfffc) | dpl);
    this.segSel[Seg.CS] = (sel & 0xfffc) | this.cpl;
    this.ripLo = off;
    this.ripHi = 0;
    this.finishDelivery(fl, isTrap);
  }

  private deliverLong(
    vec: number,
    type: number,
    hasErr: boolean,
    err: number,
    retLo: number,
    retHi: number,
    fl: number,
  ): void {
    const ext = this.ext(type);
    const gtype = this.readGate(vec, type, true);
    const sel = this.descLo >>> 16;
    const offLo = (this.descLo & 0xffff) | (this.descHi & 0xffff0000);
    const offHi = this.descHi2;
    const ist = this.descHi & 7;
    const isTrap = (gtype & 1) !== 0;
    const dpl = this.checkTargetCs(sel, ext, true);
    const conforming = (this.descHi & 0x400) !== 0;
    const csLo = this.descLo;
    const csHi = this.descHi;
    const oldCs = this.segSel[Seg.CS]!;
    const oldSs = this.segSel[Seg.SS]!;
    const oldSpLo = this.r[8]!;
    const oldSpHi = this.r[9]!;
    const newCpl = conforming ? this.cpl : dpl;
    let spLo = oldSpLo;
    let spHi = oldSpHi;
    if (ist !== 0) {
      // 64-bit mode IST (SDM 6.14.5).
      spLo = this.tssRead(36 + (ist - 1) * 8, 8);
      spHi = this.hiOut;
    } else if (newCpl < this.cpl) {
      spLo = this.tssRead(4 + newCpl * 8, 8);
      spHi = this.hiOut;
    }
    if (newCpl < this.cpl) {
      // SS gets a null selector with RPL = new CPL (SDM 6.14.4).
      this.loadNull(Seg.SS, newCpl);
      this.segAttr[Seg.SS] = AR.UNUSABLE | (newCpl << AR.DPL_SHIFT) | AR.DB;
    }
    this.descLo = csLo;
    this.descHi = csHi;
    this.loadFromDescriptor(Seg.CS, (sel & 0xfffc) | newCpl);
    this.flags &= ~F.VM;
    this.updateModeKeepCpl(newCpl);
    // The stack is aligned to 16 bytes before the pushes (SDM 6.14.2).
    this.r[8] = spLo & ~15;
    this.r[9] = spHi;
    this.push(8, oldSs, 0);
    this.push(8, oldSpLo, oldSpHi);
    this.push(8, fl, 0);
    this.push(8, oldCs, 0);
    this.push(8, retLo, retHi);
    if (hasErr) this.push(8, err, 0);
    this.ripLo = offLo;
    this.ripHi = offHi;
    this.finishDelivery(fl, isTrap);
  }

  /** Task switch through a task gate (overridden by Cpu with exec-task.ts). */
  taskGate(sel: number, _retLo: number, _err: number): void {
    this.raise(Vec.GP, sel & 0xfffc);
  }

  /** Mode bookkeeping after CS changed, with an explicit CPL. */
  updateModeKeepCpl(cpl: number): void {
    this.cpl = cpl;
    this.updateMode();
    this.updateAccessMasks();
  }

  private finishDelivery(fl: number, isTrap: boolean): void {
    let nf = fl & ~(F.TF | F.NT | F.RF | F.VM);
    if (!isTrap) nf &= ~F.IF;
    this.setRflags(nf);
    this.updateMode();
    this.updateAccessMasks();
  }
}
