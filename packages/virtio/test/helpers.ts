import { FlatGuestMemory, SplitQueue } from "../src/index";

/** Raw ring writer for spec-clause tests: lays out one split queue at fixed addresses. */
export class RawRing {
  readonly mem: FlatGuestMemory;
  readonly q: SplitQueue;
  readonly desc = 0x1000;
  readonly avail = 0x3000;
  readonly used = 0x4000;
  availIdx = 0;

  constructor(
    readonly size = 8,
    memSize = 0x10_0000,
  ) {
    this.mem = new FlatGuestMemory(memSize);
    this.q = new SplitQueue(size, this.mem);
    this.q.descAddr = this.desc;
    this.q.availAddr = this.avail;
    this.q.usedAddr = this.used;
    this.q.ready = true;
  }

  u16(gpa: number, v: number): void {
    this.mem.bytes[gpa] = v & 0xff;
    this.mem.bytes[gpa + 1] = (v >>> 8) & 0xff;
  }

  r16(gpa: number): number {
    return this.mem.bytes[gpa]! | (this.mem.bytes[gpa + 1]! << 8);
  }

  r32(gpa: number): number {
    return new DataView(this.mem.bytes.buffer).getUint32(gpa, true);
  }

  setDesc(i: number, addr: number, len: number, flags: number, next = 0, table = this.desc): void {
    const d = new DataView(this.mem.bytes.buffer);
    const at = table + 16 * i;
    d.setUint32(at, addr % 0x1_0000_0000, true);
    d.setUint32(at + 4, Math.floor(addr / 0x1_0000_0000), true);
    d.setUint32(at + 8, len, true);
    d.setUint16(at + 12, flags, true);
    d.setUint16(at + 14, next, true);
  }

  /** Put head in the avail ring and bump avail.idx. */
  publish(head: number): void {
    this.u16(this.avail + 4 + 2 * (this.availIdx % this.size), head);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    this.u16(this.avail + 2, this.availIdx);
  }

  setUsedEvent(v: number): void {
    this.u16(this.avail + 4 + 2 * this.size, v);
  }

  availEvent(): number {
    return this.r16(this.used + 4 + 8 * this.size);
  }

  usedIdx(): number {
    return this.r16(this.used + 2);
  }
}
