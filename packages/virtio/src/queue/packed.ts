import { DescFlag } from "../constants";
import type { GuestMemory } from "../memory";
import { DescriptorChain } from "./chain";
import type { QueueError, SplitQueueState } from "./split";
import type { Virtqueue } from "./virtqueue";

/** virtio 1.2 2.8.1: the avail / used bits of a packed descriptor's flags. */
export const PACKED_DESC_F_AVAIL = 1 << 7;
export const PACKED_DESC_F_USED = 1 << 15;
/** virtio 1.2 2.8.10: event suppression flags. */
export const RingEventFlags = { ENABLE: 0, DISABLE: 1, DESC: 2 } as const;

/** Plain, JSON-able packed queue state. */
export interface PackedQueueState {
  kind: "packed";
  size: number;
  ready: boolean;
  descAddr: number;
  availAddr: number;
  usedAddr: number;
  nextAvail: number;
  availWrap: boolean;
  nextUsed: number;
  usedWrap: boolean;
}

const TWO_32 = 0x1_0000_0000;
const INVALID_ADDR = Number.MAX_SAFE_INTEGER;
const MAX_CHAIN_BYTES = 0xffff_ffff;

/**
 * A packed virtqueue, device side (virtio 1.2 2.8): one descriptor ring that the driver marks
 * available and the device marks used, with wrap counters, plus the two event suppression
 * structures (driver area = availAddr, device area = usedAddr).
 *
 * The same rules as the split ring are enforced: a chain is at most `size` descriptors (or the
 * indirect table's length), no nested indirect tables, readable before writable, total under
 * 2^32 bytes; a violation latches `error` and the transport marks DEVICE_NEEDS_RESET.
 */
export class PackedQueue implements Virtqueue {
  size: number;
  ready = false;
  descAddr = 0;
  availAddr = 0;
  usedAddr = 0;
  error: QueueError | undefined;
  indirect = false;
  eventIdx = false;
  /** Next ring slot the device reads, and the avail wrap counter (2.8.1: both start at 0 / 1). */
  nextAvail = 0;
  availWrap = true;
  /** Next ring slot the device writes a used descriptor to, and the used wrap counter. */
  nextUsed = 0;
  usedWrap = true;
  private signalled = 0;
  private signalledValid = false;
  private pushed = false;
  private readonly b4 = new Uint8Array(4);
  private readonly d4 = new DataView(this.b4.buffer);
  private readonly b16 = new Uint8Array(16);
  private readonly d16 = new DataView(this.b16.buffer);
  private readonly b8 = new Uint8Array(8);
  private readonly d8 = new DataView(this.b8.buffer);

  constructor(
    readonly maxSize: number,
    public mem: GuestMemory,
  ) {
    this.size = maxSize;
  }

  reset(): void {
    this.size = this.maxSize;
    this.ready = false;
    this.descAddr = 0;
    this.availAddr = 0;
    this.usedAddr = 0;
    this.error = undefined;
    this.nextAvail = 0;
    this.availWrap = true;
    this.nextUsed = 0;
    this.usedWrap = true;
    this.signalled = 0;
    this.signalledValid = false;
    this.pushed = false;
  }

  /** 2.8.10.1: packed sizes need not be powers of two; the ring is 16-aligned, the event areas 4-aligned. */
  isValid(): boolean {
    const n = this.size;
    if (n === 0 || n > this.maxSize) return false;
    if (this.descAddr % 16 !== 0 || this.availAddr % 4 !== 0 || this.usedAddr % 4 !== 0) return false;
    const ok = (gpa: number, len: number) =>
      this.mem.slice(gpa, len) !== undefined || this.mem.read(gpa, new Uint8Array(len));
    return ok(this.descAddr, 16 * n) && ok(this.availAddr, 4) && ok(this.usedAddr, 4);
  }

  private readDesc(table: number, i: number): boolean {
    const at = table + 16 * i;
    if (this.mem.read(at, this.b16)) return true;
    this.error ??= { kind: "RingUnreadable", gpa: at };
    return false;
  }

  /** Whether the descriptor at nextAvail is available to the device (2.8.1). */
  private available(): boolean {
    if (!this.readDesc(this.descAddr, this.nextAvail)) return false;
    const flags = this.d16.getUint16(14, true);
    const avail = (flags & PACKED_DESC_F_AVAIL) !== 0;
    const used = (flags & PACKED_DESC_F_USED) !== 0;
    return avail === this.availWrap && used !== this.availWrap;
  }

  pop(): DescriptorChain | undefined {
    if (!this.ready || this.error !== undefined) return undefined;
    if (!this.available()) {
      // 2.8.10: keep driver notifications enabled (flags ENABLE) so an idle device gets kicked.
      this.d4.setUint32(0, 0, true);
      if (!this.mem.write(this.usedAddr, this.b4))
        this.error ??= { kind: "UsedUnwritable", gpa: this.usedAddr };
      return undefined;
    }
    const chain = new DescriptorChain(0);
    chain.availPos = this.nextAvail;
    chain.availWrap = this.availWrap;
    let idx = this.nextAvail;
    let wrap = this.availWrap;
    let total = 0;
    const d = this.d16;
    for (let count = 0; ; count++) {
      // virtio 1.2 2.8 (as 2.7.5.3.1 for split rings): a chain never spans more than the ring.
      if (count >= this.size) return this.fail({ kind: "ChainTooLong", limit: this.size });
      if (!this.readDesc(this.descAddr, idx)) return undefined;
      const lo = d.getUint32(0, true);
      const hi = d.getUint32(4, true);
      const addr = hi < 0x20_0000 ? hi * TWO_32 + lo : INVALID_ADDR;
      const len = d.getUint32(8, true);
      const id = d.getUint16(12, true);
      const flags = d.getUint16(14, true);
      idx++;
      if (idx >= this.size) {
        idx = 0;
        wrap = !wrap;
      }
      chain.descriptors++;
      if (flags & DescFlag.INDIRECT) {
        // 2.8.7: an indirect descriptor stands alone (no NEXT, not part of a direct chain).
        if (!this.indirect) return this.fail({ kind: "IndirectNotNegotiated" });
        if (flags & DescFlag.NEXT || count > 0) return this.fail({ kind: "IndirectWithNext" });
        if (len === 0 || len % 16 !== 0 || len / 16 > 0x10000)
          return this.fail({ kind: "BadIndirectLength", len });
        // 2.8.7: table entries are used in order; their NEXT flags and ids are ignored.
        for (let k = 0; k < len / 16; k++) {
          if (!this.readDesc(addr, k)) return undefined;
          const tlo = d.getUint32(0, true);
          const thi = d.getUint32(4, true);
          const taddr = thi < 0x20_0000 ? thi * TWO_32 + tlo : INVALID_ADDR;
          const tlen = d.getUint32(8, true);
          const tflags = d.getUint16(14, true);
          chain.descriptors++;
          if (tflags & DescFlag.INDIRECT) return this.fail({ kind: "NestedIndirect" });
          total += tlen;
          if (total > MAX_CHAIN_BYTES) return this.fail({ kind: "ChainTooBig" });
          if (!this.addSegment(chain, taddr, tlen, (tflags & DescFlag.WRITE) !== 0)) return undefined;
        }
        return this.finish(chain, id, count + 1, idx, wrap);
      }
      total += len;
      if (total > MAX_CHAIN_BYTES) return this.fail({ kind: "ChainTooBig" });
      if (!this.addSegment(chain, addr, len, (flags & DescFlag.WRITE) !== 0)) return undefined;
      // 2.8.6: the buffer id is in the last descriptor of the chain.
      if ((flags & DescFlag.NEXT) === 0) return this.finish(chain, id, count + 1, idx, wrap);
    }
  }

  private addSegment(chain: DescriptorChain, addr: number, len: number, write: boolean): boolean {
    if (!write && chain.writable.length > 0) {
      this.fail({ kind: "ReadableAfterWritable" });
      return false;
    }
    if (write) {
      chain.writable.push({ addr, len });
      chain.writableBytes += len;
    } else {
      chain.readable.push({ addr, len });
      chain.readableBytes += len;
    }
    return true;
  }

  private finish(
    chain: DescriptorChain,
    id: number,
    slots: number,
    idx: number,
    wrap: boolean,
  ): DescriptorChain {
    chain.head = id;
    chain.ringSlots = slots;
    this.nextAvail = idx;
    this.availWrap = wrap;
    return chain;
  }

  private fail(e: QueueError): undefined {
    this.error = e;
    return undefined;
  }

  save(): PackedQueueState {
    return {
      kind: "packed",
      size: this.size,
      ready: this.ready,
      descAddr: this.descAddr,
      availAddr: this.availAddr,
      usedAddr: this.usedAddr,
      nextAvail: this.nextAvail,
      availWrap: this.availWrap,
      nextUsed: this.nextUsed,
      usedWrap: this.usedWrap,
    };
  }

  /** Load a saved state; false (and the queue left reset) if it does not validate. */
  load(s: PackedQueueState | SplitQueueState): boolean {
    this.reset();
    if (!("kind" in s)) return false;
    const idx = (v: unknown) => Number.isInteger(v) && (v as number) >= 0 && (v as number) < this.maxSize;
    const addr = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
    if (s.kind !== "packed" || !Number.isInteger(s.size) || s.size < 1 || s.size > this.maxSize) return false;
    if (!idx(s.nextAvail) || !idx(s.nextUsed) || s.nextAvail >= s.size || s.nextUsed >= s.size) return false;
    if (!addr(s.descAddr) || !addr(s.availAddr) || !addr(s.usedAddr)) return false;
    this.size = s.size;
    this.ready = s.ready === true;
    this.descAddr = s.descAddr;
    this.availAddr = s.availAddr;
    this.usedAddr = s.usedAddr;
    this.nextAvail = s.nextAvail;
    this.availWrap = s.availWrap === true;
    this.nextUsed = s.nextUsed;
    this.usedWrap = s.usedWrap === true;
    if (this.ready && !this.isValid()) {
      this.reset();
      return false;
    }
    return true;
  }

  undoPop(chain: DescriptorChain): void {
    this.nextAvail = chain.availPos;
    this.availWrap = chain.availWrap;
  }

  /**
   * virtio 1.2 2.8, used descriptors: id and len first, then flags with AVAIL and USED both equal to the
   * used wrap counter (the flags write publishes it). The used index advances by the number of
   * ring slots the chain took.
   */
  pushUsed(chain: DescriptorChain, len: number): boolean {
    if (this.error !== undefined || !this.ready) return false;
    const at = this.descAddr + 16 * this.nextUsed;
    this.d8.setUint32(0, len >>> 0, true);
    this.d8.setUint16(4, chain.head, true);
    const f = (this.usedWrap ? PACKED_DESC_F_AVAIL | PACKED_DESC_F_USED : 0) | (len > 0 ? DescFlag.WRITE : 0);
    this.d8.setUint16(6, f, true);
    if (!this.mem.write(at + 8, this.b8.subarray(0, 6)) || !this.mem.write(at + 14, this.b8.subarray(6, 8))) {
      this.error = { kind: "UsedUnwritable", gpa: at };
      return false;
    }
    this.nextUsed += chain.ringSlots;
    if (this.nextUsed >= this.size) {
      this.nextUsed -= this.size;
      this.usedWrap = !this.usedWrap;
    }
    this.pushed = true;
    return true;
  }

  /** virtio 1.2 2.8 (event suppression): the driver's event suppression: ENABLE, DISABLE, or DESC (with EVENT_IDX). */
  needsNotification(): boolean {
    if (!this.ready || this.error !== undefined || !this.pushed) return false;
    this.pushed = false;
    const newPos = this.nextUsed;
    const oldPos = this.signalled;
    const wasValid = this.signalledValid;
    this.signalled = newPos;
    this.signalledValid = true;
    if (!this.mem.read(this.availAddr, this.b4)) {
      this.error ??= { kind: "RingUnreadable", gpa: this.availAddr };
      return false;
    }
    const offWrap = this.d4.getUint16(0, true);
    const flags = this.d4.getUint16(2, true) & 3;
    if (flags === RingEventFlags.DISABLE) return false;
    if (flags !== RingEventFlags.DESC || !this.eventIdx || !wasValid) return true;
    // vring_need_event on ring positions, with the event offset moved back a ring when its
    // wrap counter differs from the current used wrap counter.
    let off = offWrap & 0x7fff;
    const evWrap = offWrap >>> 15 === 1;
    if (evWrap !== this.usedWrap) off -= this.size;
    return ((newPos - off - 1) & 0xffff) < ((newPos - oldPos) & 0xffff);
  }
}
