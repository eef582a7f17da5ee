/**
 * The 32-bit hardware task switch (SDM Vol. 3 8.3): JMP or CALL to a TSS descriptor or a task gate,
 * an interrupt or exception through a task gate, and IRET with EFLAGS.NT=1. The outgoing state is
 * saved in the current TSS, the incoming one loaded from the new TSS (CR3, LDTR, EFLAGS, GPRs,
 * segment registers, EIP); busy bits, NT and the back link follow SDM Table 8-2; CR0.TS is set.
 *
 * Deviations: 16-bit TSSs are not supported (#TS); a fault while loading the new task's segment
 * registers is raised in the new task's context as the SDM says, but without the "before/after the
 * commit point" distinction for debug traps (T flag in the TSS is ignored).
 */
import type { Cpu } from "./cpu.js";
import { Vec } from "./memory.js";
import { CR0, F, Seg } from "./state.js";

export const TaskSource = { JMP: 0, CALL: 1, IRET: 2, INT: 3 } as const;

/** TSS offsets of the 32-bit layout (SDM Figure 8-2). */
const T = { LINK: 0, CR3: 28, EIP: 32, EFLAGS: 36, EAX: 40, ES: 72, LDT: 96 } as const;

function tssWr32(c: Cpu, baseLo: number, off: number, v: number): void {
  c.beginSupervisor();
  c.wr32((baseLo + off) | 0, 0, v);
  c.endSupervisor();
}

function tssRd32(c: Cpu, baseLo: number, off: number): number {
  c.beginSupervisor();
  const v = c.rd32((baseLo + off) | 0, 0);
  c.endSupervisor();
  return v;
}

/** Sets or clears the busy bit (type bit 1) of the TSS descriptor for `sel` in the GDT. */
function setBusy(c: Cpu, sel: number, busy: boolean): void {
  c.readDescriptor(sel);
  const hi = busy ? c.descHi | 0x200 : c.descHi & ~0x200;
  c.beginSupervisor();
  c.wr32((c.descAddr + 4) | 0, c.descAddrHi, hi);
  c.endSupervisor();
}

/**
 * Switches to the task whose TSS selector is `sel`. `retLo` is the EIP saved for the outgoing task;
 * `err` >= 0 is pushed on the new task's stack (exceptions with an error code through a task gate).
 */
export function taskSwitch(c: Cpu, sel: number, source: number, retLo: number, err: number): void {
  if (sel & 4 || (sel & 0xfffc) === 0) c.raise(Vec.GP, sel & 0xfffc);
  c.readDescriptor(sel);
  const hi = c.descHi;
  const type = (hi >> 8) & 0x1f;
  const wantBusy = source === TaskSource.IRET;
  if (type !== (wantBusy ? 0xb : 0x9)) c.raise(source === TaskSource.IRET ? Vec.TS : Vec.GP, sel & 0xfffc);
  if ((hi & 0x8000) === 0) c.raise(Vec.NP, sel & 0xfffc);
  const newBase = ((c.descLo >>> 16) | ((hi & 0xff) << 16) | (hi & 0xff000000)) >>> 0;
  let newLimit = (c.descLo & 0xffff) | (hi & 0xf0000);
  if (hi & 0x800000) newLimit = (newLimit << 12) | 0xfff;
  if (newLimit >>> 0 < 0x67) c.raise(Vec.TS, sel & 0xfffc);
  const descLo = c.descLo;
  const descHi = c.descHi;

  // Save the outgoing task (SDM 8.3 step 9).
  const oldSel = c.segSel[Seg.TR]! & 0xffff;
  const oldBase = c.segBaseLo[Seg.TR]!;
  if ((c.segAttr[Seg.TR]! & 0xf) !== 0xb) c.raise(Vec.TS, oldSel & 0xfffc);
  let fl = c.getRflags();
  if (source === TaskSource.IRET) fl &= ~F.NT;
  tssWr32(c, oldBase, T.EIP, retLo);
  tssWr32(c, oldBase, T.EFLAGS, fl);
  for (let n = 0; n < 8; n++) tssWr32(c, oldBase, T.EAX + n * 4, c.r[n * 2]!);
  for (let s = 0; s < 6; s++) tssWr32(c, oldBase, T.ES + s * 4, c.segSel[s]! & 0xffff);
  if (source === TaskSource.JMP || source === TaskSource.IRET) setBusy(c, oldSel, false);

  // Read the incoming task before changing anything else.
  const nb = newBase | 0;
  const cr3 = tssRd32(c, nb, T.CR3);
  const eip = tssRd32(c, nb, T.EIP);
  let nfl = tssRd32(c, nb, T.EFLAGS);
  const regs = c.taskScratch;
  for (let n = 0; n < 8; n++) regs[n] = tssRd32(c, nb, T.EAX + n * 4);
  const sels = c.taskSelScratch;
  for (let s = 0; s < 6; s++) sels[s] = tssRd32(c, nb, T.ES + s * 4) & 0xffff;
  const ldt = tssRd32(c, nb, T.LDT) & 0xffff;
  if (source === TaskSource.CALL || source === TaskSource.INT) {
    nfl |= F.NT;
    tssWr32(c, nb, T.LINK, oldSel);
  }
  if (source !== TaskSource.IRET) setBusy(c, sel, true);

  // Commit point: TR, CR3, registers (SDM 8.3 steps 11-13).
  c.descLo = descLo;
  c.descHi = descHi | (source !== TaskSource.IRET ? 0x200 : 0);
  c.loadFromDescriptor(Seg.TR, sel);
  c.cr0 |= CR0.TS;
  if (c.cr0 & CR0.PG) c.writeCr(3, cr3, 0);
  c.setRflags(nfl);
  for (let n = 0; n < 8; n++) {
    c.r[n * 2] = regs[n]!;
    c.r[n * 2 + 1] = 0;
  }
  // LDTR, then the segment registers with the new task's CPL (CS.RPL); errors are #TS.
  if ((ldt & 0xfffc) === 0) c.loadNull(Seg.LDTR, ldt);
  else {
    c.readDescriptor(ldt, false, Vec.TS);
    if (((c.descHi >> 8) & 0x1f) !== 2 || ldt & 4) c.raise(Vec.TS, ldt & 0xfffc);
    c.loadFromDescriptor(Seg.LDTR, ldt);
  }
  if (nfl & F.VM) {
    for (let s = 0; s < 6; s++) c.loadReal(s, sels[s]!);
    c.cpl = 3;
  } else {
    const cs = sels[Seg.CS]!;
    if ((cs & 0xfffc) === 0) c.raise(Vec.TS, 0);
    c.readDescriptor(cs, false, Vec.TS);
    if ((c.descHi & 0x1800) !== 0x1800) c.raise(Vec.TS, cs & 0xfffc);
    if ((c.descHi & 0x8000) === 0) c.raise(Vec.NP, cs & 0xfffc);
    c.loadFromDescriptor(Seg.CS, cs);
    c.cpl = cs & 3;
    for (const s of [Seg.SS, Seg.DS, Seg.ES, Seg.FS, Seg.GS]) c.loadSegment(s, sels[s]!);
  }
  c.updateModeKeepCpl(c.cpl);
  c.nipLo = eip;
  c.nipHi = 0;
  c.stopBlock = true;
  if (err >= 0) c.push(c.codeMode === 16 ? 2 : 4, err, 0);
}
