import { DescFlag, VIRTQ_AVAIL_F_NO_INTERRUPT } from "../constants";
import type { GuestMemory } from "../memory";
import { DescriptorChain } from "./chain";
import type { PackedQueueState } from "./packed";
import type { Virtqueue } from "./virtqueue";

/** Why a queue stopped: each variant names the rule the driver broke (the device then needs reset). */
export type QueueError =
  | { kind: "RingUnreadable"; gpa: number }
  | { kind: "UsedUnwritable"; gpa: number }
  | { kind: "AvailIdxTooFar"; availIdx: number; lastAvail: number; size: number }
  | { kind: "HeadOutOfRange"; head: number; size: number }
  | { kind: "NextOutOfRange"; next: number; tableSize: number }
  | { kind: "ChainTooLong"; limit: number }
  | { kind: "NestedIndirect" }
  | { kind: "IndirectWithNext" }
  | { kind: "IndirectNotNegotiated" }
  | { kind: "BadIndirectLength"; len: number }
  | { kind: "ReadableAfterWritable" }
  | { kind: "ChainTooBig" };

/** Plain, JSON-able queue state for snapshots. */
export interface SplitQueueState {
  size: number;
  ready: boolean;
  descAddr: number;
  availAddr: number;
  usedAddr: number;
  lastAvail: number;
  nextUsed: number;
  signalledUsed: number;
  signalledValid: boolean;
}

const TWO_32 = 0x1_0000_0000;
/** Descriptor addresses at or above 2^53 cannot be RAM here; they parse to this invalid address. */
const INVALID_ADDR = Number.MAX_SAFE_INTEGER;
/** virtio 1.2 2.7.4: "Drivers MUST NOT add a descriptor chain longer than 2^32 bytes in total". */
const MAX_CHAIN_BYTES = 0xffff_ffff;

/**
 * A split virtqueue, device side (virtio 1.2 2.7). The transport fills in size and the three
 * ring addresses; the device pops chains and pushes used elements.
 *
 * Every guest-controlled value is checked: avail.idx may run at most `size` ahead (Firecracker's
 * fix for rust-vmm/vm-virtio#196), a chain ends after `size` links (or the indirect table's
 * length), indirect tables do not nest, and all ring accesses go through checked GuestMemory.
 * A violation latches `error` and the queue stops; the transport marks DEVICE_NEEDS_RESET.
 */
export class SplitQueue implements Virtqueue {
  size: number;
  ready = false;
  descAddr = 0;
  availAddr = 0;
  usedAddr = 0;
  /** Next avail ring slot to read (free-running 16-bit). */
  lastAvail = 0;
  /** Next used ring slot to write (free-running 16-bit; what used.idx holds). */
  nextUsed = 0;
  /** used.idx at the last notification decision (2.7.10 EVENT_IDX "old"). */
  private signalledUsed = 0;
  private signalledValid = false;
  /** Set when the driver broke a ring rule; the queue does nothing more until reset. */
  error: QueueError | undefined;
  /** Negotiated: indirect descriptors allowed. */
  indirect = false;
  /** Negotiated: EVENT_IDX suppression in use. */
  eventIdx = false;

  private readonly b2 = new Uint8Array(2);
  private readonly d2 = new DataView(this.b2.buffer);
  private readonly b8 = new Uint8Array(8);
  private readonly d8 = new DataView(this.b8.buffer);
  private readonly b16 = new Uint8Array(16);
  private readonly d16 = new DataView(this.b16.buffer);

  constructor(
    readonly maxSize: number,
    public mem: GuestMemory,
  ) {
    this.size = maxSize;
  }

  /** Back to the state after device reset (2.4): not ready, default size, indices zero. */
  reset(): void {
    this.size = this.maxSize;
    this.ready = false;
    this.descAddr = 0;
    this.availAddr = 0;
    this.usedAddr = 0;
    this.lastAvail = 0;
    this.nextUsed = 0;
    this.signalledUsed = 0;
    this.signalledValid = false;
    this.error = undefined;
  }

  /**
   * Whether the configuration can work: size a power of two within maxSize (2.7: split queue
   * sizes are powers of two), rings aligned as 2.7 table "Virtqueue Part Alignment" requires
   * (descriptors 16, avail 2, used 4) and wholly in guest RAM.
   */
  isValid(): boolean {
    const n = this.size;
    if (n === 0 || n > this.maxSize || (n & (n - 1)) !== 0) return false;
    if (this.descAddr % 16 !== 0 || this.availAddr % 2 !== 0 || this.usedAddr % 4 !== 0) return false;
    const ok = (gpa: number, len: number) => this.mem.slice(gpa, len) !== undefined || this.probe(gpa, len);
    return ok(this.descAddr, 16 * n) && ok(this.availAddr, 6 + 2 * n) && ok(this.usedAddr, 6 + 8 * n);
  }

  private probe(gpa: number, len: number): boolean {
    // A ring split across two memory slots: check by reading it (it is at most ~512 KiB, once).
    return this.mem.read(gpa, new Uint8Array(len));
  }

  private readU16(gpa: number): number {
    if (!this.mem.read(gpa, this.b2)) {
      this.error ??= { kind: "RingUnreadable", gpa };
      return -1;
    }
    return this.d2.getUint16(0, true);
  }

  private writeU16(gpa: number, v: number): boolean {
    this.d2.setUint16(0, v, true);
    if (this.mem.write(gpa, this.b2)) return true;
    this.error ??= { kind: "UsedUnwritable", gpa };
    return false;
  }

  /** Number of chains the driver has made available and the device not yet popped, or -1 on error. */
  pending(): number {
    if (!this.ready || this.error !== undefined) return -1;
    const availIdx = this.readU16(this.availAddr + 2);
    if (availIdx < 0) return -1;
    const n = (availIdx - this.lastAvail) & 0xffff;
    // virtio 1.2 2.7.13.3 / Firecracker: the driver cannot have more than size buffers outstanding.
    if (n > this.size) {
      this.error = { kind: "AvailIdxTooFar", availIdx, lastAvail: this.lastAvail, size: this.size };
      return -1;
    }
    return n;
  }

  /**
   * Take the next available chain: parse and validate it. Returns undefined when the ring is
   * empty or the queue has an error (check `error`). With EVENT_IDX, an empty ring re-arms
   * avail_event so the driver kicks for the next buffer (2.7.10).
   */
  pop(): DescriptorChain | undefined {
    let n = this.pending();
    if (n === 0 && this.eventIdx) {
      // Publish avail_event, then look again: a buffer added between the two reads would
      // otherwise wait for a kick the driver (seeing the old avail_event) never sends.
      this.writeU16(this.usedAddr + 4 + 8 * this.size, this.lastAvail);
      n = this.pending();
    }
    if (n <= 0) return undefined;
    const before = this.lastAvail;
    const slot = this.lastAvail % this.size;
    const head = this.readU16(this.availAddr + 4 + 2 * slot);
    if (head < 0) return undefined;
    this.lastAvail = (this.lastAvail + 1) & 0xffff;
    if (head >= this.size) {
      this.error = { kind: "HeadOutOfRange", head, size: this.size };
      return undefined;
    }
    const chain = this.walk(head);
    if (chain !== undefined) chain.availPos = before;
    return chain;
  }

  /** Put a popped chain (and all popped after it) back, e.g. net rx waiting for more buffers. */
  undoPop(chain: DescriptorChain): void {
    this.lastAvail = chain.availPos;
  }

  /** Read and check one descriptor chain (2.7.5). */
  private walk(head: number): DescriptorChain | undefined {
    const chain = new DescriptorChain(head);
    let table = this.descAddr;
    let tableSize = this.size;
    let idx = head;
    let count = 0;
    let inIndirect = false;
    let total = 0;
    const d = this.d16;
    for (;;) {
      // 2.7.5.3.1 / 2.7.4.2: a chain is never longer than the queue size (or the indirect
      // table): this bound also ends any loop a hostile driver builds.
      if (count >= tableSize) {
        this.error = { kind: "ChainTooLong", limit: tableSize };
        return undefined;
      }
      count++;
      chain.descriptors++;
      const at = table + 16 * idx;
      if (!this.mem.read(at, this.b16)) {
        this.error = { kind: "RingUnreadable", gpa: at };
        return undefined;
      }
      const lo = d.getUint32(0, true);
      const hi = d.getUint32(4, true);
      const addr = hi < 0x20_0000 ? hi * TWO_32 + lo : INVALID_ADDR;
      const len = d.getUint32(8, true);
      const flags = d.getUint16(12, true);
      const next = d.getUint16(14, true);
      if (flags & DescFlag.INDIRECT) {
        // 2.7.5.3.1: "The driver MUST NOT set the VIRTQ_DESC_F_INDIRECT flag unless the
        // VIRTIO_F_INDIRECT_DESC feature was negotiated", "MUST NOT set ... INDIRECT within an
        // indirect descriptor (nested)", "MUST NOT set both VIRTQ_DESC_F_INDIRECT and VIRTQ_DESC_F_NEXT".
        if (!this.indirect) return this.fail({ kind: "IndirectNotNegotiated" });
        if (inIndirect) return this.fail({ kind: "NestedIndirect" });
        if (flags & DescFlag.NEXT) return this.fail({ kind: "IndirectWithNext" });
        // The table is whole 16-byte descriptors, indexable by a 16-bit next field.
        if (len === 0 || len % 16 !== 0 || len / 16 > 0x10000) {
          return this.fail({ kind: "BadIndirectLength", len });
        }
        inIndirect = true;
        table = addr;
        tableSize = len / 16;
        idx = 0;
        count = 0;
        continue;
      }
      const write = (flags & DescFlag.WRITE) !== 0;
      // 2.7.4.2: "The driver MUST place any device-writable descriptor elements after any
      // device-readable descriptor elements" (QEMU also rejects the other order).
      if (!write && chain.writable.length > 0) return this.fail({ kind: "ReadableAfterWritable" });
      total += len;
      if (total > MAX_CHAIN_BYTES) return this.fail({ kind: "ChainTooBig" });
      if (write) {
        chain.writable.push({ addr, len });
        chain.writableBytes += len;
      } else {
        chain.readable.push({ addr, len });
        chain.readableBytes += len;
      }
      if ((flags & DescFlag.NEXT) === 0) return chain;
      if (next >= tableSize) return this.fail({ kind: "NextOutOfRange", next, tableSize });
      idx = next;
    }
  }

  private fail(e: QueueError): undefined {
    this.error = e;
    return undefined;
  }

  /**
   * Return a chain to the driver: used.ring[slot] = {head, len}, then used.idx (2.7.8: "The
   * device MUST set len prior to updating the used idx"). len is the number of bytes written
   * into the chain's device-writable buffers. False if the used ring is not writable.
   */
  pushUsed(chain: DescriptorChain, len: number): boolean {
    if (this.error !== undefined || !this.ready) return false;
    const head = chain.head;
    const slot = this.nextUsed % this.size;
    const at = this.usedAddr + 4 + 8 * slot;
    this.d8.setUint32(0, head, true);
    this.d8.setUint32(4, len >>> 0, true);
    if (!this.mem.write(at, this.b8)) {
      this.error = { kind: "UsedUnwritable", gpa: at };
      return false;
    }
    this.nextUsed = (this.nextUsed + 1) & 0xffff;
    return this.writeU16(this.usedAddr + 2, this.nextUsed);
  }

  /**
   * Whether the driver wants an interrupt for the used buffers pushed since the last call
   * (2.7.10). With EVENT_IDX: vring_need_event(used_event, new, old). Without: unless
   * avail.flags has VIRTQ_AVAIL_F_NO_INTERRUPT.
   */
  needsNotification(): boolean {
    if (!this.ready || this.error !== undefined) return false;
    const newIdx = this.nextUsed;
    const oldIdx = this.signalledUsed;
    const wasValid = this.signalledValid;
    this.signalledUsed = newIdx;
    this.signalledValid = true;
    if (this.eventIdx) {
      if (!wasValid) return true;
      const usedEvent = this.readU16(this.availAddr + 4 + 2 * this.size);
      if (usedEvent < 0) return false;
      return ((newIdx - usedEvent - 1) & 0xffff) < ((newIdx - oldIdx) & 0xffff);
    }
    if (wasValid && newIdx === oldIdx) return false;
    const flags = this.readU16(this.availAddr);
    if (flags < 0) return false;
    return (flags & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
  }

  save(): SplitQueueState {
    return {
      size: this.size,
      ready: this.ready,
      descAddr: this.descAddr,
      availAddr: this.availAddr,
      usedAddr: this.usedAddr,
      lastAvail: this.lastAvail,
      nextUsed: this.nextUsed,
      signalledUsed: this.signalledUsed,
      signalledValid: this.signalledValid,
    };
  }

  /** Load a saved state; false (and the queue left reset) if it does not validate. */
  load(s: SplitQueueState | PackedQueueState): boolean {
    this.reset();
    if ("kind" in s) return false;
    const u16 = (v: unknown) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffff;
    const addr = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
    if (!u16(s.size) || !u16(s.lastAvail) || !u16(s.nextUsed) || !u16(s.signalledUsed)) return false;
    if (!addr(s.descAddr) || !addr(s.availAddr) || !addr(s.usedAddr)) return false;
    this.size = s.size;
    this.ready = s.ready === true;
    this.descAddr = s.descAddr;
    this.availAddr = s.availAddr;
    this.usedAddr = s.usedAddr;
    this.lastAvail = s.lastAvail;
    this.nextUsed = s.nextUsed;
    this.signalledUsed = s.signalledUsed;
    this.signalledValid = s.signalledValid === true;
    if (this.ready && !this.isValid()) {
      this.reset();
      return false;
    }
    return true;
  }
}
