// Builds the guest image and the cases of the KVM differential test (see pfdriver.c for the protocol).
// Test-only code: BigInt is fine here.

export const IMAGE_SIZE = 16 << 20;
const GDT = 0x1000;
const IDT = 0x2000;
const TSS = 0x3000;
const STUBS = 0x4000;
const KSTACK_TOP = 0x9000;
const LOW_PT = 0xa000; // PDPT, PD, PT for the low 2 MiB at 0xa000, 0xb000, 0xc000
const PML4 = 0xd000;
export const USER_CODE = 0x100000;
const USER_STACK = 0x1fe000;
const DATA = 0x200000; // 0x200000 .. 0x800000: data frames full of UD2
const TABLES = 0x800000; // per-case PDPT, PD, PT

/** Entry points of the user stubs (CPL 3): read, write, fetch. */
export const STUB = { read: USER_CODE, write: USER_CODE + 0x10, fetch: USER_CODE + 0x20 } as const;
/** The same stubs on a supervisor page (CPL 0 runs them through KVM's instruction emulator under kvm_pvm). */
const KCODE = 0x5000;
export const KSTUB = { read: KCODE, write: KCODE + 0x10, fetch: KCODE + 0x20 } as const;

export interface Case {
  /** The access the code makes, and at which CPL (0: supervisor-mode access). */
  kind: "read" | "write" | "fetch";
  cpl: 0 | 3;
  /** RFLAGS (AC matters for SMAP). */
  rflags: bigint;
  lin: bigint;
  cr0: bigint;
  cr4: bigint;
  efer: bigint;
  /** Addresses of the entries of the walk (PML4E first), compared after the run. */
  entries: bigint[];
  /** A human-readable description for failure messages. */
  what: string;
}

class Img {
  readonly buf = new Uint8Array(IMAGE_SIZE);
  readonly view = new DataView(this.buf.buffer);
  w64(pa: number, v: bigint): void {
    this.view.setBigUint64(pa, v, true);
  }
  r64(pa: number): bigint {
    return this.view.getBigUint64(pa, true);
  }
  bytes(pa: number, b: number[]): void {
    this.buf.set(b, pa);
  }
}

/** xorshift32: deterministic cases from a seed. */
function rng(seed: number): () => number {
  let x = Math.imul(seed, 0x9e3779b1) | 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

export function buildImage(
  seed: number,
  count: number,
  maxPhyAddr: number,
  pages1G: boolean,
  supervisor: boolean,
): { image: Uint8Array; cases: Case[] } {
  const m = new Img();
  // GDT: null, kernel code64, kernel data, user data, user code64, busy 64-bit TSS.
  m.w64(GDT + 0x08, 0x00af9a000000ffffn);
  m.w64(GDT + 0x10, 0x00cf92000000ffffn);
  m.w64(GDT + 0x18, 0x00cff2000000ffffn);
  m.w64(GDT + 0x20, 0x00affa000000ffffn);
  m.w64(GDT + 0x28, 0x67n | (BigInt(TSS) << 16n) | (0x8bn << 40n));
  m.w64(GDT + 0x30, 0n);
  // TSS: RSP0, no I/O bitmap.
  m.w64(TSS + 4, BigInt(KSTACK_TOP));
  m.view.setUint16(TSS + 0x66, 0x68, true);
  // IDT: every vector to a 16-byte stub; #PF reports error code and CR2, the others their vector.
  for (let v = 0; v < 256; v++) {
    const h = STUBS + v * 16;
    const gate = BigInt(h & 0xffff) | (0x08n << 16n) | (0x8e00n << 32n) | (BigInt(h >>> 16) << 48n);
    m.w64(IDT + v * 16, gate);
    m.w64(IDT + v * 16 + 8, 0n);
    if (v === 14) {
      // pop rax; out 0x11, eax; mov rax, cr2; out 0x12, eax; shr rax, 32; out 0x13, eax; hlt
      m.bytes(h, [0x58, 0xe7, 0x11, 0x0f, 0x20, 0xd0, 0xe7, 0x12, 0x48, 0xc1, 0xe8, 0x20, 0xe7, 0x13, 0xf4]);
    } else {
      // mov eax, v; out 0x14, eax; hlt
      m.bytes(h, [0xb8, v, 0, 0, 0, 0xe7, 0x14, 0xf4]);
    }
  }
  // User code: read, write, fetch stubs; a completed access ends in UD2 (#UD, vector 6).
  m.bytes(STUB.read, [0x8a, 0x18, 0x0f, 0x0b]);
  m.bytes(STUB.write, [0x88, 0x18, 0x0f, 0x0b]);
  m.bytes(STUB.fetch, [0xff, 0xe0]);
  m.bytes(KSTUB.read, [0x8a, 0x18, 0x0f, 0x0b]);
  m.bytes(KSTUB.write, [0x88, 0x18, 0x0f, 0x0b]);
  m.bytes(KSTUB.fetch, [0xff, 0xe0]);
  for (let pa = DATA; pa < TABLES; pa += 2) m.view.setUint16(pa, 0x0b0f, true);
  // Low 2 MiB identity-mapped with 4 KiB pages, A/D preset so the runs never touch them.
  const up = 0x67n; // P RW US A D
  m.w64(PML4, BigInt(LOW_PT) | up);
  m.w64(LOW_PT, BigInt(LOW_PT + 0x1000) | up);
  m.w64(LOW_PT + 0x1000, BigInt(LOW_PT + 0x2000) | up);
  for (let p = 0; p < 0x200000; p += 0x1000) {
    let f = 0x63n; // supervisor RW, A, D
    if (p === USER_CODE) f = 0x65n; // user read-only
    if (p === USER_STACK) f = 0x67n;
    if (p === 0) f = 0n;
    m.w64(LOW_PT + 0x2000 + (p >>> 12) * 8, BigInt(p) | f);
  }

  const rnd = rng(seed);
  const pick = (p: number) => rnd() < p;
  const cases: Case[] = [];
  let next = TABLES;
  const alloc = () => {
    const p = next;
    next += 0x1000;
    return p;
  };
  for (let i = 1; i <= count; i++) {
    const pdpt = alloc();
    const pd = alloc();
    const pt = alloc();
    const leafLevel = pick(0.7) ? 1 : pick(0.65) || !pages1G ? 2 : 3;
    const lin = (BigInt(i) << 39n) | (1n << 30n) | (2n << 21n) | (3n << 12n) | 0x800n;
    const nxe = pick(0.9);
    const efer = nxe ? 0xd00n : 0x500n;
    const cr4 =
      0x20n | (pick(0.3) ? 0x100000n : 0n) | (pick(0.3) ? 0x200000n : 0n) | (pick(0.3) ? 0x80n : 0n);
    const cpl = supervisor && pick(0.4) ? 0 : 3;
    const rflags = pick(0.3) ? 0x40002n : 0x2n;
    const cr0 = 0x80000033n | (pick(0.5) ? 0x10000n : 0n);
    const notes: string[] = [];
    const entry = (level: number, addr: bigint, isLeaf: boolean): bigint => {
      let e = addr;
      if (pick(0.93)) e |= 1n;
      if (pick(0.8)) e |= 2n;
      if (pick(0.88)) e |= 4n;
      if (pick(0.3)) e |= 0x20n;
      if (isLeaf && pick(0.3)) e |= 0x40n;
      if (pick(0.15)) e |= 1n << 63n;
      if (isLeaf && level > 1) e |= 0x80n;
      notes.push(`L${level}=${e.toString(16)}`);
      return e;
    };
    const frame4k = BigInt(DATA + (i % 0x500) * 0x1000);
    const entries: bigint[] = [];
    const pml4e = BigInt(PML4 + i * 8);
    entries.push(pml4e);
    const vals: bigint[] = [entry(4, BigInt(pdpt), false)];
    const pdpte = BigInt(pdpt + 8);
    entries.push(pdpte);
    vals.push(entry(3, leafLevel === 3 ? 0n : BigInt(pd), leafLevel === 3));
    if (leafLevel <= 2) {
      entries.push(BigInt(pd + 16));
      vals.push(entry(2, leafLevel === 2 ? 0x600000n : BigInt(pt), leafLevel === 2));
    }
    if (leafLevel === 1) {
      entries.push(BigInt(pt + 24));
      vals.push(entry(1, frame4k, true));
    }
    // Now and then a reserved bit somewhere.
    if (pick(0.15)) {
      const k = Math.floor(rnd() * vals.length);
      const choice = Math.floor(rnd() * 4);
      let bit: bigint;
      if (choice === 0)
        bit = 1n << BigInt(Math.min(maxPhyAddr, 51)); // above MAXPHYADDR
      else if (choice === 1) bit = 1n << 51n;
      else if (choice === 2)
        bit = k === 0 ? 0x80n : 1n << 55n; // PS in a PML4E, or an ignored bit
      else bit = k === vals.length - 1 && leafLevel > 1 ? 1n << 13n : 1n << 52n; // large-page rsvd / ignored
      vals[k] = vals[k]! | bit;
      notes.push(`rsvd L${4 - k} bit ${bit.toString(16)}`);
    }
    entries.forEach((ea, k) => {
      m.w64(Number(ea), vals[k]!);
    });
    const kind = pick(0.4) ? "read" : pick(0.55) ? "write" : "fetch";
    cases.push({
      kind,
      cpl,
      rflags,
      lin,
      cr0,
      cr4,
      efer,
      entries,
      what: `${kind} cpl${cpl} rflags=${rflags.toString(16)} ${lin.toString(16)} cr0=${cr0.toString(16)} cr4=${cr4.toString(16)} efer=${efer.toString(16)} ${notes.join(" ")}`,
    });
  }
  return { image: m.buf, cases };
}

export const PML4_ADDR = BigInt(PML4);
