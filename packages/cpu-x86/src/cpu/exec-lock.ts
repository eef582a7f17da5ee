/**
 * LOCK-prefixed read-modify-writes (SDM Vol. 3 9.1.2.2) on guest RAM backed by a SharedArrayBuffer:
 * done with Atomics, so vCPUs running in other workers over the same memory see them as atomic.
 * 8- and 16-bit operands and 32-bit ones use a compare-exchange loop on the aligned 32-bit word that
 * contains them; 64-bit operands use BigInt64Array Atomics (only on this path). An operand that
 * straddles a 32-bit (64-bit) boundary is a split lock: it falls back to the ordinary, non-atomic
 * handler, as does RAM that is not shared (one thread: every RMW is already atomic) and MMIO.
 */
import { Prefix } from "../decoder/insn.js";
import { Op } from "../generated/ops.js";
import { alu, mask } from "./alu.js";
import { LF } from "./flags.js";
import { DB_WRITE } from "./memory.js";
import type { BuildInsn, OpCpu, XHandler, XInsn } from "./operands.js";
import { F } from "./state.js";

const i32Views = new WeakMap<ArrayBufferLike, Int32Array>();
const i64Views = new WeakMap<ArrayBufferLike, BigInt64Array>();

function i32Of(b: ArrayBufferLike): Int32Array {
  let v = i32Views.get(b);
  if (v === undefined) {
    v = new Int32Array(b, 0, b.byteLength >> 2);
    i32Views.set(b, v);
  }
  return v;
}

function i64Of(b: ArrayBufferLike): BigInt64Array {
  let v = i64Views.get(b);
  if (v === undefined) {
    v = new BigInt64Array(b, 0, b.byteLength >> 3);
    i64Views.set(b, v);
  }
  return v;
}

/** The operation a locked instruction applies to the old memory value. */
function apply(c: OpCpu, i: XInsn, sz: number, old: number, oldHi: number): number {
  switch (i.op) {
    case Op.ADD:
    case Op.OR:
    case Op.ADC:
    case Op.SBB:
    case Op.AND:
    case Op.SUB:
    case Op.XOR: {
      const immForm = i.opcode >= 0x80;
      const s = immForm ? i.imm & mask(sz) : c.getReg(sz, i.reg, i);
      const sh = immForm ? i.immHi : c.opHi;
      return alu(c, i.k, sz, old, oldHi, s, sh);
    }
    default:
      return old;
  }
}

/**
 * Runs `i` (a LOCK-prefixed RMW whose ordinary handler is `inner`) atomically when its operand is in
 * shared RAM. Returns false when the caller must run the ordinary handler instead.
 */
export function lockedRmw(c: OpCpu, i: XInsn): boolean {
  const sz = i.op === Op.CMPXCHG8B ? 8 : i.sz;
  if (i.op === Op.CMPXCHG16B) return false;
  c.memAddr(i, 0, sz, true);
  const la = c.la;
  if (c.acCheck) c.checkAlign(la, sz);
  const off = la & 0xfff;
  if (off + sz > 4096) return false;
  c.probeWrite(la, c.laHi);
  // This path reads and writes the view itself, not through the checked accesses.
  if (c.dbData) c.dbMatch(la, c.laHi, sz, DB_WRITE);
  const ti = c.tlbLookup(la, c.laHi, 1);
  if (c.tlbIsMmio(ti)) return false;
  const view = c.tlbView[ti]!;
  if (!(view.buffer instanceof SharedArrayBuffer)) return false;
  const abs = view.byteOffset + c.tlbOff[ti]! + off;
  if (sz === 8) return locked64(c, i, abs, view.buffer);
  const word = abs >> 2;
  const shift = (abs & 3) * 8;
  if ((abs & 3) + sz > 4) return false; // split lock
  const i32 = i32Of(view.buffer);
  const m = mask(sz);
  for (;;) {
    const w = Atomics.load(i32, word);
    const old = sz === 4 ? w : (w >>> shift) & m;
    let res: number;
    let regOut = -1;
    switch (i.op) {
      case Op.INC:
      case Op.DEC: {
        const cf = c.cf();
        c.lzOp = LF.NONE;
        c.flags = cf ? c.flags | F.CF : c.flags & ~F.CF;
        res = (old + (i.op === Op.DEC ? -1 : 1)) & m;
        c.lzOp = i.op === Op.DEC ? LF.DEC : LF.INC;
        c.lzSize = sz;
        c.lzDst = old;
        c.lzSrc = 1;
        c.lzRes = sz === 4 ? res | 0 : res;
        break;
      }
      case Op.NOT:
        res = ~old & m;
        break;
      case Op.NEG:
        res = alu(c, 5, sz, 0, 0, old, 0);
        break;
      case Op.XADD: {
        const s = c.getReg(sz, i.reg, i);
        res = alu(c, 0, sz, old, 0, s, 0);
        regOut = old;
        break;
      }
      case Op.XCHG:
        res = c.getReg(sz, i.reg, i);
        regOut = old;
        break;
      case Op.CMPXCHG: {
        const a = c.getReg(sz, 0, i);
        alu(c, 7, sz, a, 0, old, 0);
        res = c.zf() ? c.getReg(sz, i.reg, i) : old;
        break;
      }
      case Op.BTS:
      case Op.BTR:
      case Op.BTC: {
        // Only the immediate-offset form reaches here (register offsets may address other words).
        const bit = i.imm & (sz * 8 - 1);
        const b = 1 << bit;
        c.setArith(F.CF, old & b ? F.CF : 0);
        res = (i.op === Op.BTS ? old | b : i.op === Op.BTR ? old & ~b : old ^ b) & m;
        break;
      }
      default:
        res = apply(c, i, sz, old, 0) & m;
    }
    const nw = sz === 4 ? res | 0 : (w & ~(m << shift)) | ((res & m) << shift);
    if (Atomics.compareExchange(i32, word, w, nw) === w) {
      if (i.op === Op.XADD || i.op === Op.XCHG) c.setReg(sz, i.reg, regOut, 0, i);
      if (i.op === Op.CMPXCHG && !c.zf()) c.setReg(sz, 0, old, 0, i);
      return true;
    }
    // Another agent changed the word: recompute from the new value (flags are recomputed too).
  }
}

function locked64(c: OpCpu, i: XInsn, abs: number, buf: SharedArrayBuffer): boolean {
  if ((abs & 7) !== 0) return false; // split lock
  const i64 = i64Of(buf);
  const idx = abs >> 3;
  const lo32 = (v: bigint) => Number(BigInt.asIntN(32, v));
  const hi32 = (v: bigint) => Number(BigInt.asIntN(32, v >> 32n));
  const mk = (lo: number, hi: number) => (BigInt(hi) << 32n) | BigInt(lo >>> 0);
  for (;;) {
    const w = Atomics.load(i64, idx);
    const old = lo32(w);
    const oldHi = hi32(w);
    let res: number;
    let resHi: number;
    switch (i.op) {
      case Op.CMPXCHG8B: {
        const eq = old === c.r[0] && oldHi === c.r[4];
        const nw = eq ? mk(c.r[6]!, c.r[2]!) : w;
        if (Atomics.compareExchange(i64, idx, w, nw) !== w) continue;
        c.setArith(F.ZF, eq ? F.ZF : 0);
        if (!eq) {
          c.setReg(4, 0, old, 0, i);
          c.setReg(4, 2, oldHi, 0, i);
        }
        return true;
      }
      case Op.XCHG:
      case Op.XADD:
      case Op.CMPXCHG: {
        const s = c.getReg(8, i.reg, i);
        const sh = c.opHi;
        if (i.op === Op.XCHG) {
          res = s;
          resHi = sh;
        } else if (i.op === Op.XADD) {
          res = alu(c, 0, 8, old, oldHi, s, sh);
          resHi = c.opHi;
        } else {
          alu(c, 7, 8, c.r[0]!, c.r[1]!, old, oldHi);
          if (c.zf()) {
            res = s;
            resHi = sh;
          } else {
            res = old;
            resHi = oldHi;
          }
        }
        if (Atomics.compareExchange(i64, idx, w, mk(res, resHi)) !== w) continue;
        if (i.op !== Op.CMPXCHG) c.setReg(8, i.reg, old, oldHi, i);
        else if (!c.zf()) c.setReg(8, 0, old, oldHi, i);
        return true;
      }
      case Op.INC:
      case Op.DEC:
      case Op.NOT:
      case Op.NEG:
      case Op.BTS:
      case Op.BTR:
      case Op.BTC:
        return false; // rare in 64-bit width: the ordinary handler (not atomic across workers)
      default:
        res = apply(c, i, 8, old, oldHi);
        resHi = c.opHi;
    }
    if (Atomics.compareExchange(i64, idx, w, mk(res, resHi)) === w) return true;
  }
}

/** Ops whose LOCK form is handled here (the others, and register-offset BT*, use the ordinary path). */
const LOCKABLE = new Set<number>([
  Op.ADD,
  Op.OR,
  Op.ADC,
  Op.SBB,
  Op.AND,
  Op.SUB,
  Op.XOR,
  Op.INC,
  Op.DEC,
  Op.NOT,
  Op.NEG,
  Op.XADD,
  Op.XCHG,
  Op.CMPXCHG,
  Op.CMPXCHG8B,
  Op.BTS,
  Op.BTR,
  Op.BTC,
]);

function lockExec(c: OpCpu, i: XInsn): void {
  if (!lockedRmw(c, i)) (i.inner as XHandler)(c, i);
}

/**
 * At block build: routes a LOCK-prefixed memory RMW (and XCHG with memory, which locks implicitly,
 * SDM Vol. 2 XCHG) through `lockedRmw`.
 */
export function wrapLock(i: BuildInsn): void {
  if (!i.isMem || !LOCKABLE.has(i.op)) return;
  if ((i.prefixes & Prefix.LOCK) === 0 && i.op !== Op.XCHG) return;
  if ((i.op === Op.BTS || i.op === Op.BTR || i.op === Op.BTC) && i.opcode !== 0xba) return;
  i.inner = i.fn;
  i.fn = lockExec;
}
