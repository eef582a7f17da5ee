/**
 * Multiboot v1 loader (Multiboot Specification 0.6.96): find and check the header in the first
 * 8 KiB, load an ELF32 image by its program headers or a flat image by the a.out-kludge address
 * fields, load modules, and build the multiboot_info structure (memory, command line, modules,
 * memory map, boot loader name) and the entry state of section 3.2.
 *
 * Every step fails with a {@link MultibootLoadError} naming it; nothing else is thrown on any input.
 */
import { BOOT_STACK_ADDR, e820Map, HIGH_MEMORY_START, MULTIBOOT_INFO_ADDR, ramRanges } from "../layout.js";
import type { GuestMemory } from "../memory.js";
import { type BootCpuState, BootStateError, protectedModeEntry } from "./cpu-state.js";

/** Header magic (3.1.2). */
export const MULTIBOOT_HEADER_MAGIC = 0x1badb002;
/** The value in EAX at entry (3.2). */
export const MULTIBOOT_BOOTLOADER_MAGIC = 0x2badb002;
/** The header must lie in the first 8192 bytes, 32-bit aligned (3.1.1). */
export const MULTIBOOT_SEARCH = 8192;

/** Header flags (3.1.3). Bits 0-15 are requirements: an unknown one set must make loading fail. */
export const MbHeaderFlag = {
  PAGE_ALIGN: 1 << 0, // modules page-aligned
  MEMORY_INFO: 1 << 1, // mem_* and mmap_* must be provided
  VIDEO_MODE: 1 << 2, // video mode table must be provided
  AOUT_KLUDGE: 1 << 16, // address fields at header offsets 12-28 are valid
} as const;
const SUPPORTED_REQUIRED = MbHeaderFlag.PAGE_ALIGN | MbHeaderFlag.MEMORY_INFO;

/** multiboot_info flags (3.3). */
export const MbInfoFlag = {
  MEMORY: 1 << 0,
  BOOTDEV: 1 << 1,
  CMDLINE: 1 << 2,
  MODS: 1 << 3,
  MMAP: 1 << 6,
  LOADER_NAME: 1 << 9,
} as const;

/** multiboot_info field offsets (3.3). */
export const MbInfo = {
  FLAGS: 0,
  MEM_LOWER: 4,
  MEM_UPPER: 8,
  BOOT_DEVICE: 12,
  CMDLINE: 16,
  MODS_COUNT: 20,
  MODS_ADDR: 24,
  MMAP_LENGTH: 44,
  MMAP_ADDR: 48,
  BOOT_LOADER_NAME: 64,
  SIZE: 88,
} as const;

export type MultibootLoadErrorKind =
  | { kind: "NoHeader" }
  | { kind: "UnsupportedFlags"; flags: number }
  | { kind: "BadAddressFields"; detail: string }
  | { kind: "NotElf32"; detail: string }
  | { kind: "BadElf"; detail: string }
  | { kind: "NoLoadableSegments" }
  | { kind: "NotInRam"; what: string; start: number; end: number }
  | { kind: "Overlap"; what: string; start: number; end: number };

/** A multiboot load failure; `message` is one line. */
export class MultibootLoadError extends Error {
  constructor(readonly detail: MultibootLoadErrorKind) {
    super(describe(detail));
    this.name = "MultibootLoadError";
  }
}

const hex = (n: number) => `0x${n.toString(16)}`;

function describe(d: MultibootLoadErrorKind): string {
  switch (d.kind) {
    case "NoHeader":
      return "not a multiboot kernel: no valid multiboot header (magic 0x1badb002 with a zero checksum) in the first 8 KiB";
    case "UnsupportedFlags":
      return `multiboot header requires features tskvm does not provide (flags ${hex(d.flags)}: video mode or an unknown bit 0-15)`;
    case "BadAddressFields":
      return `multiboot a.out-kludge address fields are inconsistent: ${d.detail}`;
    case "NotElf32":
      return `multiboot kernel without address fields must be an ELF32 i386 executable: ${d.detail}`;
    case "BadElf":
      return `multiboot ELF kernel is malformed: ${d.detail}`;
    case "NoLoadableSegments":
      return "multiboot ELF kernel has no PT_LOAD segment";
    case "NotInRam":
      return `${d.what} [${hex(d.start)}, ${hex(d.end)}) is not guest RAM: give more memory or relink`;
    case "Overlap":
      return `${d.what} [${hex(d.start)}, ${hex(d.end)}) overlaps the boot loader's low-memory area`;
  }
}

export interface MultibootHeader {
  /** File offset of the header. */
  offset: number;
  flags: number;
  /** The a.out-kludge address fields, present when flags bit 16 is set. */
  addresses?: {
    headerAddr: number;
    loadAddr: number;
    loadEndAddr: number;
    bssEndAddr: number;
    entryAddr: number;
  };
}

function u32(b: Uint8Array, o: number): number {
  return ((b[o] ?? 0) | ((b[o + 1] ?? 0) << 8) | ((b[o + 2] ?? 0) << 16) | ((b[o + 3] ?? 0) << 24)) >>> 0;
}
function u16(b: Uint8Array, o: number): number {
  return (b[o] ?? 0) | ((b[o + 1] ?? 0) << 8);
}

/** Find the multiboot header (3.1.1: 32-bit aligned, wholly within the first 8192 bytes). */
export function findMultibootHeader(image: Uint8Array): MultibootHeader {
  const end = Math.min(image.length, MULTIBOOT_SEARCH) - 12;
  for (let off = 0; off <= end; off += 4) {
    if (u32(image, off) !== MULTIBOOT_HEADER_MAGIC) continue;
    const flags = u32(image, off + 4);
    // 3.1.2: magic + flags + checksum must be 0 as a u32 sum.
    if ((MULTIBOOT_HEADER_MAGIC + flags + u32(image, off + 8)) >>> 0 !== 0) continue;
    if (flags & 0xffff & ~SUPPORTED_REQUIRED)
      throw new MultibootLoadError({ kind: "UnsupportedFlags", flags });
    const hdr: MultibootHeader = { offset: off, flags };
    if (flags & MbHeaderFlag.AOUT_KLUDGE) {
      if (off + 32 > image.length || off + 32 > MULTIBOOT_SEARCH) {
        throw new MultibootLoadError({
          kind: "BadAddressFields",
          detail: "the header is cut off before its address fields",
        });
      }
      hdr.addresses = {
        headerAddr: u32(image, off + 12),
        loadAddr: u32(image, off + 16),
        loadEndAddr: u32(image, off + 20),
        bssEndAddr: u32(image, off + 24),
        entryAddr: u32(image, off + 28),
      };
    }
    return hdr;
  }
  throw new MultibootLoadError({ kind: "NoHeader" });
}

/** One piece to copy into guest memory, then zero-fill up to `memSize`. */
interface Segment {
  addr: number;
  data: Uint8Array;
  memSize: number;
}

function aoutSegments(image: Uint8Array, h: MultibootHeader): { segs: Segment[]; entry: number } {
  const a = h.addresses!;
  const bad = (detail: string) => new MultibootLoadError({ kind: "BadAddressFields", detail });
  // 3.1.5: load_addr <= header_addr; the file offset of load_addr is header offset - (header_addr - load_addr).
  if (a.loadAddr > a.headerAddr)
    throw bad(`load_addr ${hex(a.loadAddr)} is above header_addr ${hex(a.headerAddr)}`);
  const fileStart = h.offset - (a.headerAddr - a.loadAddr);
  if (fileStart < 0) throw bad("load_addr would start before the beginning of the file");
  // load_end_addr 0: the text and data occupy the rest of the file.
  const loadLen = a.loadEndAddr === 0 ? image.length - fileStart : a.loadEndAddr - a.loadAddr;
  if (a.loadEndAddr !== 0 && a.loadEndAddr < a.loadAddr) throw bad("load_end_addr is below load_addr");
  if (fileStart + loadLen > image.length)
    throw bad(`the file ends before load_end_addr (needs ${fileStart + loadLen} bytes)`);
  const loadEnd = a.loadAddr + loadLen;
  // bss_end_addr 0: no bss.
  if (a.bssEndAddr !== 0 && a.bssEndAddr < loadEnd) throw bad("bss_end_addr is below load_end_addr");
  const memSize = (a.bssEndAddr === 0 ? loadEnd : a.bssEndAddr) - a.loadAddr;
  if (a.entryAddr < a.loadAddr || a.entryAddr >= loadEnd)
    throw bad(`entry_addr ${hex(a.entryAddr)} is outside the loaded image`);
  return {
    segs: [{ addr: a.loadAddr, data: image.subarray(fileStart, fileStart + loadLen), memSize }],
    entry: a.entryAddr,
  };
}

/** ELF constants (System V gABI, i386 psABI). */
const ELFCLASS32 = 1;
const ELFDATA2LSB = 1;
const ET_EXEC = 2;
const EM_386 = 3;
const PT_LOAD = 1;
const MAX_PHDRS = 256;

function elfSegments(image: Uint8Array): { segs: Segment[]; entry: number } {
  const notElf = (detail: string) => new MultibootLoadError({ kind: "NotElf32", detail });
  const badElf = (detail: string) => new MultibootLoadError({ kind: "BadElf", detail });
  if (image.length < 52 || u32(image, 0) !== 0x464c457f) throw notElf("no ELF magic");
  if (image[4] !== ELFCLASS32) throw notElf(image[4] === 2 ? "it is ELF64" : `EI_CLASS ${image[4]}`);
  if (image[5] !== ELFDATA2LSB) throw notElf("not little-endian");
  if (u16(image, 16) !== ET_EXEC) throw notElf(`e_type ${u16(image, 16)} is not ET_EXEC`);
  if (u16(image, 18) !== EM_386) throw notElf(`e_machine ${u16(image, 18)} is not EM_386`);
  const entry = u32(image, 24);
  const phoff = u32(image, 28);
  const phentsize = u16(image, 42);
  const phnum = u16(image, 44);
  if (phentsize < 32) throw badElf(`e_phentsize ${phentsize} is smaller than an Elf32_Phdr`);
  if (phnum > MAX_PHDRS) throw badElf(`${phnum} program headers`);
  if (phoff + phnum * phentsize > image.length) throw badElf("program headers lie past the end of the file");
  const segs: Segment[] = [];
  for (let i = 0; i < phnum; i++) {
    const p = phoff + i * phentsize;
    if (u32(image, p) !== PT_LOAD) continue;
    const off = u32(image, p + 4);
    const paddr = u32(image, p + 12);
    const filesz = u32(image, p + 16);
    const memsz = u32(image, p + 20);
    if (filesz > memsz) throw badElf(`segment ${i}: p_filesz > p_memsz`);
    if (off + filesz > image.length) throw badElf(`segment ${i}: file data past the end of the file`);
    if (memsz === 0) continue;
    // Multiboot loads at physical addresses: p_paddr, as GRUB and QEMU do.
    segs.push({ addr: paddr, data: image.subarray(off, off + filesz), memSize: memsz });
  }
  if (segs.length === 0) throw new MultibootLoadError({ kind: "NoLoadableSegments" });
  return { segs, entry };
}

/** One module (3.3: mod_start, mod_end, string). */
export interface MultibootModule {
  data: Uint8Array;
  cmdline?: string;
}

export interface MultibootLoadOptions {
  kernel: Uint8Array;
  cmdline?: string | undefined;
  modules?: MultibootModule[] | undefined;
  memBytes: number;
}

export interface MultibootLoadResult {
  header: MultibootHeader;
  cpu: BootCpuState;
  entry: number;
  infoAddr: number;
  modules: { start: number; end: number }[];
  /** First byte after the kernel image and its bss. */
  kernelEnd: number;
}

/** The low area the loader uses for its own structures (GDT, stack, info): a kernel may not load there. */
const RESERVED_LOW_END = MULTIBOOT_INFO_ADDR + 0x10000;

/** Load a multiboot v1 kernel and its modules; return the entry state of 3.2. */
export function loadMultiboot(mem: GuestMemory, opts: MultibootLoadOptions): MultibootLoadResult {
  const header = findMultibootHeader(opts.kernel);
  const { segs, entry } = header.addresses ? aoutSegments(opts.kernel, header) : elfSegments(opts.kernel);
  const lowRamEnd = ramRanges(opts.memBytes)[0]?.size ?? 0;

  let kernelEnd = 0;
  for (const s of segs) {
    const end = s.addr + s.memSize;
    if (end > lowRamEnd)
      throw new MultibootLoadError({ kind: "NotInRam", what: "kernel segment", start: s.addr, end });
    if (s.addr < RESERVED_LOW_END)
      throw new MultibootLoadError({ kind: "Overlap", what: "kernel segment", start: s.addr, end });
    kernelEnd = Math.max(kernelEnd, end);
  }
  const put = (gpa: number, bytes: Uint8Array, what: string) => {
    if (!mem.write(gpa, bytes))
      throw new MultibootLoadError({ kind: "NotInRam", what, start: gpa, end: gpa + bytes.length });
  };
  for (const s of segs) {
    put(s.addr, s.data, "kernel segment");
    if (s.memSize > s.data.length)
      put(s.addr + s.data.length, new Uint8Array(s.memSize - s.data.length), "kernel bss");
  }

  // Modules go after the kernel, page-aligned (flags bit 0 asks for it; we always do).
  const modules: { start: number; end: number }[] = [];
  let next = Math.max(Math.ceil(kernelEnd / 4096) * 4096, HIGH_MEMORY_START);
  for (const m of opts.modules ?? []) {
    const start = next;
    const end = start + m.data.length;
    if (end > lowRamEnd) throw new MultibootLoadError({ kind: "NotInRam", what: "module", start, end });
    put(start, m.data, "module");
    modules.push({ start, end });
    next = Math.ceil(end / 4096) * 4096;
  }

  // The info structure and what it points to, packed after it in the reserved low area.
  const enc = new TextEncoder();
  const info = new Uint8Array(RESERVED_LOW_END - MULTIBOOT_INFO_ADDR);
  const dv = new DataView(info.buffer);
  let cursor = MbInfo.SIZE;
  const alloc = (bytes: Uint8Array): number => {
    cursor = Math.ceil(cursor / 8) * 8;
    if (cursor + bytes.length > info.length) {
      throw new MultibootLoadError({
        kind: "NotInRam",
        what: "multiboot info (command lines too long)",
        start: MULTIBOOT_INFO_ADDR,
        end: MULTIBOOT_INFO_ADDR + cursor + bytes.length,
      });
    }
    info.set(bytes, cursor);
    const at = MULTIBOOT_INFO_ADDR + cursor;
    cursor += bytes.length;
    return at;
  };
  const cstr = (s: string) => {
    const b = enc.encode(s);
    const z = new Uint8Array(b.length + 1);
    z.set(b);
    return alloc(z);
  };

  let flags = MbInfoFlag.MEMORY | MbInfoFlag.MMAP | MbInfoFlag.LOADER_NAME | MbInfoFlag.CMDLINE;
  // 3.3: mem_lower is KiB from 0 (max 640), mem_upper KiB from 1 MiB to the first hole.
  dv.setUint32(MbInfo.MEM_LOWER, 640, true);
  dv.setUint32(MbInfo.MEM_UPPER, Math.floor((lowRamEnd - HIGH_MEMORY_START) / 1024), true);
  dv.setUint32(MbInfo.CMDLINE, cstr(opts.cmdline ?? ""), true);
  dv.setUint32(MbInfo.BOOT_LOADER_NAME, cstr("tskvm"), true);

  // The memory map: entries of { u32 size; u64 base_addr; u64 length; u32 type }, size excluding itself.
  const e820 = e820Map(opts.memBytes);
  const mmap = new Uint8Array(e820.length * 24);
  const mv = new DataView(mmap.buffer);
  e820.forEach((e, i) => {
    const o = i * 24;
    mv.setUint32(o, 20, true);
    mv.setUint32(o + 4, e.addr % 2 ** 32, true);
    mv.setUint32(o + 8, Math.floor(e.addr / 2 ** 32), true);
    mv.setUint32(o + 12, e.size % 2 ** 32, true);
    mv.setUint32(o + 16, Math.floor(e.size / 2 ** 32), true);
    mv.setUint32(o + 20, e.type, true);
  });
  dv.setUint32(MbInfo.MMAP_LENGTH, mmap.length, true);
  dv.setUint32(MbInfo.MMAP_ADDR, alloc(mmap), true);

  if (modules.length > 0) {
    flags |= MbInfoFlag.MODS;
    const list = new Uint8Array(modules.length * 16);
    const lv = new DataView(list.buffer);
    (opts.modules ?? []).forEach((m, i) => {
      const r = modules[i]!;
      lv.setUint32(i * 16, r.start, true);
      lv.setUint32(i * 16 + 4, r.end, true);
      lv.setUint32(i * 16 + 8, cstr(m.cmdline ?? ""), true);
    });
    dv.setUint32(MbInfo.MODS_COUNT, modules.length, true);
    dv.setUint32(MbInfo.MODS_ADDR, alloc(list), true);
  }
  dv.setUint32(MbInfo.FLAGS, flags, true);
  put(MULTIBOOT_INFO_ADDR, info.subarray(0, cursor), "multiboot info");

  let cpu: BootCpuState;
  try {
    cpu = protectedModeEntry(mem, entry, MULTIBOOT_BOOTLOADER_MAGIC, MULTIBOOT_INFO_ADDR, BOOT_STACK_ADDR);
  } catch (e) {
    if (e instanceof BootStateError)
      throw new MultibootLoadError({ kind: "NotInRam", what: e.what, start: e.gpa, end: e.gpa + 1 });
    throw e;
  }
  return { header, cpu, entry, infoAddr: MULTIBOOT_INFO_ADDR, modules, kernelEnd };
}
