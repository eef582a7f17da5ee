/**
 * Linux x86 boot protocol loader for bzImage kernels (Documentation/arch/x86/boot.rst, protocol
 * >= 2.06, the 64-bit entry): parse and validate the setup header, load the protected-mode
 * kernel, build the zero page (struct boot_params, Documentation/arch/x86/zero-page.rst) with
 * the setup header, the e820 map, the command line and the initrd, and produce the boot vCPU state.
 *
 * Every step fails with a {@link LinuxLoadError} naming it; the loader never throws anything else
 * on any input bytes (a fuzz test holds it to that).
 */
import {
  BOOT_STACK_ADDR,
  CMDLINE_ADDR,
  CMDLINE_MAX,
  type E820Entry,
  e820Map,
  HIGH_MEMORY_START,
  ramRanges,
  ZERO_PAGE_ADDR,
} from "../layout.js";
import type { GuestMemory } from "../memory.js";
import { type BootCpuState, BootStateError, longModeEntry } from "./cpu-state.js";
import { type KernelElf, PayloadError, unpackPayload } from "./payload.js";

/** Setup-header offsets in the bzImage file and in boot_params (boot.rst "The real-mode kernel header"). */
export const Hdr = {
  SETUP_SECTS: 0x1f1, // u8: size of the setup in 512-byte sectors (0 means 4)
  SYSSIZE: 0x1f4, // u32: protected-mode code size in 16-byte paragraphs
  VID_MODE: 0x1fa, // u16: video mode control
  BOOT_FLAG: 0x1fe, // u16: 0xAA55
  JUMP: 0x200, // u16: x86 jump; its second byte + 0x202 is the end of the header
  HEADER: 0x202, // u32: "HdrS"
  VERSION: 0x206, // u16: boot protocol version
  TYPE_OF_LOADER: 0x210, // u8: boot loader identifier (0xff: undefined)
  LOADFLAGS: 0x211, // u8
  CODE32_START: 0x214, // u32: where the protected-mode kernel is loaded
  RAMDISK_IMAGE: 0x218, // u32: initrd address
  RAMDISK_SIZE: 0x21c, // u32: initrd size
  HEAP_END_PTR: 0x224, // u16
  CMD_LINE_PTR: 0x228, // u32: command-line address (2.02+)
  INITRD_ADDR_MAX: 0x22c, // u32: highest byte the initrd may occupy (2.03+)
  KERNEL_ALIGNMENT: 0x230, // u32 (2.05+)
  RELOCATABLE_KERNEL: 0x234, // u8 (2.05+)
  MIN_ALIGNMENT: 0x235, // u8 (2.10+)
  XLOADFLAGS: 0x236, // u16 (2.12+)
  CMDLINE_SIZE: 0x238, // u32: maximum command-line length without the NUL (2.06+)
  PAYLOAD_OFFSET: 0x248, // u32: compressed payload, from the protected-mode kernel's start (2.08+)
  PAYLOAD_LENGTH: 0x24c, // u32 (2.08+)
  PREF_ADDRESS: 0x258, // u64 (2.10+)
  INIT_SIZE: 0x260, // u32 (2.10+)
} as const;

/** boot_params fields outside the setup header (zero-page.rst). */
export const ZeroPage = {
  EXT_RAMDISK_IMAGE: 0x0c0, // u32: initrd address bits 63:32
  EXT_RAMDISK_SIZE: 0x0c4, // u32
  EXT_CMD_LINE_PTR: 0x0c8, // u32
  E820_ENTRIES: 0x1e8, // u8
  E820_TABLE: 0x2d0, // 128 entries of { u64 addr; u64 size; u32 type }
  SIZE: 0x1000,
} as const;

/** "HdrS" read as a little-endian u32. */
export const HDRS_MAGIC = 0x53726448;
export const BOOT_FLAG_MAGIC = 0xaa55;
/** The oldest protocol accepted: 2.06 is the first with cmdline_size. */
export const MIN_PROTOCOL = 0x0206;
/** loadflags.LOADED_HIGH: the protected-mode code is loaded at 0x100000. */
export const LOADED_HIGH = 1 << 0;
/** loadflags.CAN_USE_HEAP: heap_end_ptr is valid. */
export const CAN_USE_HEAP = 1 << 7;
/** xloadflags.XLF_KERNEL_64: the kernel has the legacy 64-bit entry point at +0x200. */
export const XLF_KERNEL_64 = 1 << 0;
/** The 64-bit entry point's offset in the protected-mode kernel (boot.rst "64-bit Boot Protocol"). */
export const ENTRY_64_OFFSET = 0x200;
/** boot_params.e820_table holds 128 entries (E820_MAX_ENTRIES_ZEROPAGE). */
export const E820_MAX_ENTRIES_ZEROPAGE = 128;
/** type_of_loader 0xff: "undefined" boot loader (boot.rst, type_of_loader). */
const LOADER_UNDEFINED = 0xff;
/** The maximum setup size: setup_sects is a byte, so 255 + 1 sectors (boot sector included). */
const MAX_SETUP_SECTS = 255;

/** What went wrong, per step of the load. */
export type LinuxLoadErrorKind =
  | { kind: "TooShort"; need: number; got: number }
  | { kind: "BadBootFlag"; got: number }
  | { kind: "BadMagic"; got: number }
  | { kind: "OldProtocol"; version: number }
  | { kind: "NotLoadedHigh" }
  | { kind: "No64BitEntry" }
  | { kind: "TruncatedSetup"; need: number; got: number }
  | { kind: "TruncatedKernel"; need: number; got: number }
  | { kind: "KernelDoesNotFit"; start: number; end: number; ramEnd: number }
  | { kind: "CmdlineTooLong"; length: number; max: number }
  | { kind: "InitrdTooLarge"; size: number; available: number }
  | { kind: "MemoryTooSmall"; what: string; gpa: number }
  | { kind: "BadPayload"; why: string };

/** A bzImage load failure; `message` is one line a user can act on. */
export class LinuxLoadError extends Error {
  constructor(readonly detail: LinuxLoadErrorKind) {
    super(describe(detail));
    this.name = "LinuxLoadError";
  }
}

const hex = (n: number) => `0x${n.toString(16)}`;
const ver = (v: number) => `${v >> 8}.${(v & 0xff).toString().padStart(2, "0")}`;

function describe(d: LinuxLoadErrorKind): string {
  switch (d.kind) {
    case "TooShort":
      return `not a bzImage: ${d.got} bytes, a boot sector and setup header need at least ${d.need}`;
    case "BadBootFlag":
      return `not a bzImage: boot flag at 0x1fe is ${hex(d.got)}, expected 0xaa55`;
    case "BadMagic":
      return `not a bzImage: no "HdrS" setup-header magic at 0x202 (found ${hex(d.got)})`;
    case "OldProtocol":
      return `boot protocol ${ver(d.version)} is too old: tskvm needs 2.06 or later`;
    case "NotLoadedHigh":
      return "not a bzImage: loadflags.LOADED_HIGH is clear (a zImage loads at 0x10000, unsupported)";
    case "No64BitEntry":
      return "kernel has no 64-bit entry point (xloadflags.XLF_KERNEL_64 clear): a 64-bit kernel is required";
    case "TruncatedSetup":
      return `bzImage truncated: the setup needs ${d.need} bytes, the file has ${d.got}`;
    case "TruncatedKernel":
      return `bzImage truncated: the header announces ${d.need} bytes of kernel, the file has ${d.got}`;
    case "KernelDoesNotFit":
      return `kernel needs guest memory [${hex(d.start)}, ${hex(d.end)}) but RAM ends at ${hex(d.ramEnd)}: give more memory`;
    case "CmdlineTooLong":
      return `kernel command line is ${d.length} bytes, the kernel accepts at most ${d.max}`;
    case "InitrdTooLarge":
      return `initrd of ${d.size} bytes does not fit: ${d.available} bytes of RAM are free below the initrd limit`;
    case "MemoryTooSmall":
      return `guest memory too small: cannot write the ${d.what} at ${hex(d.gpa)}`;
    case "BadPayload":
      return `bzImage payload is malformed: ${d.why}`;
  }
}

/** The parsed, validated setup header. */
export interface BzImageHeader {
  /** Protocol version, e.g. 0x020f for 2.15. */
  version: number;
  setupSects: number;
  loadflags: number;
  xloadflags: number;
  initrdAddrMax: number;
  kernelAlignment: number;
  relocatable: boolean;
  minAlignment: number;
  cmdlineSize: number;
  prefAddress: number;
  initSize: number;
  /** File offset of the protected-mode kernel: (setup_sects + 1) * 512. */
  kernelOffset: number;
  /** Bytes of protected-mode kernel in the file. */
  kernelSize: number;
  /** Length of the setup header to copy into boot_params, from 0x1f1. */
  headerEnd: number;
  /** The compressed kernel, as offsets in the protected-mode kernel (protocol 2.08+; else 0). */
  payloadOffset: number;
  payloadLength: number;
}

function u8(b: Uint8Array, o: number): number {
  return b[o] ?? 0;
}
function u16(b: Uint8Array, o: number): number {
  return u8(b, o) | (u8(b, o + 1) << 8);
}
function u32(b: Uint8Array, o: number): number {
  return (u16(b, o) | (u16(b, o + 2) << 16)) >>> 0;
}

/** Parse and validate a bzImage's setup header. */
export function parseBzImage(image: Uint8Array): BzImageHeader {
  // The header fields read below reach 0x268; require the whole 2.10+ header region to be present.
  const minLen = Hdr.INIT_SIZE + 4;
  if (image.length < minLen) throw new LinuxLoadError({ kind: "TooShort", need: minLen, got: image.length });
  const bootFlag = u16(image, Hdr.BOOT_FLAG);
  if (bootFlag !== BOOT_FLAG_MAGIC) throw new LinuxLoadError({ kind: "BadBootFlag", got: bootFlag });
  const magic = u32(image, Hdr.HEADER);
  if (magic !== HDRS_MAGIC) throw new LinuxLoadError({ kind: "BadMagic", got: magic });
  const version = u16(image, Hdr.VERSION);
  if (version < MIN_PROTOCOL) throw new LinuxLoadError({ kind: "OldProtocol", version });
  const loadflags = u8(image, Hdr.LOADFLAGS);
  if (!(loadflags & LOADED_HIGH)) throw new LinuxLoadError({ kind: "NotLoadedHigh" });
  // xloadflags exists from 2.12; an older kernel has no 64-bit entry we may use.
  const xloadflags = version >= 0x020c ? u16(image, Hdr.XLOADFLAGS) : 0;
  if (!(xloadflags & XLF_KERNEL_64)) throw new LinuxLoadError({ kind: "No64BitEntry" });

  // boot.rst: "If [setup_sects] is 0, the real value is 4."
  let setupSects = u8(image, Hdr.SETUP_SECTS);
  if (setupSects === 0) setupSects = 4;
  const kernelOffset = (Math.min(setupSects, MAX_SETUP_SECTS) + 1) * 512;
  if (image.length < kernelOffset) {
    throw new LinuxLoadError({ kind: "TruncatedSetup", need: kernelOffset, got: image.length });
  }
  const kernelSize = image.length - kernelOffset;
  // syssize (2.04+) counts 16-byte paragraphs of protected-mode code: a file shorter than that was cut.
  const sysBytes = u32(image, Hdr.SYSSIZE) * 16;
  if (sysBytes > kernelSize) {
    throw new LinuxLoadError({ kind: "TruncatedKernel", need: kernelOffset + sysBytes, got: image.length });
  }
  if (kernelSize <= ENTRY_64_OFFSET) {
    throw new LinuxLoadError({
      kind: "TruncatedKernel",
      need: kernelOffset + ENTRY_64_OFFSET + 1,
      got: image.length,
    });
  }
  // "The end of setup header can be calculated as 0x0202 + byte value at offset 0x0201".
  const headerEnd = Math.min(0x202 + u8(image, 0x201), kernelOffset);
  const relocatable = u8(image, Hdr.RELOCATABLE_KERNEL) !== 0;
  const prefLo = u32(image, Hdr.PREF_ADDRESS);
  const prefHi = u32(image, Hdr.PREF_ADDRESS + 4);
  return {
    version,
    setupSects,
    loadflags,
    xloadflags,
    initrdAddrMax: u32(image, Hdr.INITRD_ADDR_MAX),
    kernelAlignment: u32(image, Hdr.KERNEL_ALIGNMENT),
    relocatable,
    minAlignment: version >= 0x020a ? u8(image, Hdr.MIN_ALIGNMENT) : 0,
    cmdlineSize: u32(image, Hdr.CMDLINE_SIZE),
    prefAddress: version >= 0x020a ? prefHi * 2 ** 32 + prefLo : 0,
    initSize: version >= 0x020a ? u32(image, Hdr.INIT_SIZE) : 0,
    kernelOffset,
    kernelSize,
    headerEnd,
    payloadOffset: version >= 0x0208 ? u32(image, Hdr.PAYLOAD_OFFSET) : 0,
    payloadLength: version >= 0x0208 ? u32(image, Hdr.PAYLOAD_LENGTH) : 0,
  };
}

/** What to load. */
export interface LinuxLoadOptions {
  kernel: Uint8Array;
  initrd?: Uint8Array | undefined;
  cmdline?: string | undefined;
  /** Guest RAM size in bytes (laid out by layout.ts: below the MMIO hole, then above 4 GiB). */
  memBytes: number;
  /**
   * Who inflates the kernel: `"guest"` loads the bzImage as is and enters its decompressor (what
   * QEMU and kvmtool do); `"host"` (default) inflates the payload here and enters vmlinux's
   * `startup_64` directly, as Firecracker does with a vmlinux. Payloads the host cannot inflate
   * (xz, zstd, ...) and protocols before 2.08 (no payload fields) fall back to `"guest"`.
   */
  decompress?: "host" | "guest" | undefined;
}

/** Where things went, for messages and for the VMM. */
export interface LinuxLoadResult {
  header: BzImageHeader;
  cpu: BootCpuState;
  kernelAddr: number;
  entry: number;
  zeroPage: number;
  cmdlineAddr: number;
  initrd: { addr: number; size: number } | undefined;
  e820: E820Entry[];
  /** Whether the host inflated the kernel (`entry` is then vmlinux's startup_64). */
  hostDecompressed: boolean;
}

const alignUp = (n: number, a: number) => (a > 1 ? Math.ceil(n / a) * a : n);
const alignDown = (n: number, a: number) => (a > 1 ? Math.floor(n / a) * a : n);

/** Load a bzImage (and initrd) into guest memory and return the 64-bit entry state. */
export function loadLinux(mem: GuestMemory, opts: LinuxLoadOptions): LinuxLoadResult {
  const h = parseBzImage(opts.kernel);
  const lowRamEnd = ramRanges(opts.memBytes)[0]?.size ?? 0;

  // Load the protected-mode kernel at 1 MiB, as QEMU, kvmtool and Firecracker do. The kernel's
  // runtime area (boot.rst, init_size) is at align_up(load, kernel_alignment) when relocatable,
  // else at pref_address; both must be RAM. With the payload inflated on the host, the vmlinux
  // segments go to their own physical addresses instead (above 1 MiB: below are our tables).
  const kernelAddr = HIGH_MEMORY_START;
  const elf = opts.decompress === "guest" ? undefined : unpackKernel(opts.kernel, h, opts.memBytes);
  let kernelStart: number;
  let kernelEnd: number;
  if (elf) {
    if (elf.start < kernelAddr) {
      const why = `vmlinux loads at ${hex(elf.start)}, below 1 MiB where the boot tables live`;
      throw new LinuxLoadError({ kind: "BadPayload", why });
    }
    kernelStart = elf.start;
    kernelEnd = elf.end;
  } else {
    const align =
      h.kernelAlignment > 0 && (h.kernelAlignment & (h.kernelAlignment - 1)) === 0 ? h.kernelAlignment : 1;
    const runtimeStart = h.relocatable || h.prefAddress === 0 ? alignUp(kernelAddr, align) : h.prefAddress;
    kernelStart = Math.min(kernelAddr, runtimeStart);
    kernelEnd = Math.max(kernelAddr + h.kernelSize, runtimeStart + h.initSize);
  }
  if (kernelEnd > lowRamEnd) {
    throw new LinuxLoadError({
      kind: "KernelDoesNotFit",
      start: kernelStart,
      end: kernelEnd,
      ramEnd: lowRamEnd,
    });
  }

  // Command line: cmdline_size excludes the terminating NUL (boot.rst, cmdline_size).
  const cmdBytes = new TextEncoder().encode(opts.cmdline ?? "");
  const cmdMax = Math.min(h.cmdlineSize, CMDLINE_MAX - 1);
  if (cmdBytes.length > cmdMax)
    throw new LinuxLoadError({ kind: "CmdlineTooLong", length: cmdBytes.length, max: cmdMax });

  // initrd: as high as possible below initrd_addr_max (the highest byte it may occupy) and the
  // end of low RAM, page-aligned, above the kernel's runtime area.
  let initrd: { addr: number; size: number } | undefined;
  if (opts.initrd && opts.initrd.length > 0) {
    const limit = Math.min(h.initrdAddrMax + 1, lowRamEnd);
    const size = opts.initrd.length;
    const addr = alignDown(limit - size, 4096);
    if (limit - size < 0 || addr < alignUp(kernelEnd, 4096)) {
      throw new LinuxLoadError({
        kind: "InitrdTooLarge",
        size,
        available: Math.max(0, limit - alignUp(kernelEnd, 4096)),
      });
    }
    initrd = { addr, size };
  }

  const write = (gpa: number, bytes: Uint8Array, what: string) => {
    if (!mem.write(gpa, bytes)) throw new LinuxLoadError({ kind: "MemoryTooSmall", what, gpa });
  };
  if (elf) {
    for (const seg of elf.segments) {
      write(seg.paddr, seg.data, "kernel");
      // The tail past the file bytes (.bss, .brk) must read as zero whatever RAM held before.
      if (seg.memSize > seg.data.length)
        write(seg.paddr + seg.data.length, new Uint8Array(seg.memSize - seg.data.length), "kernel");
    }
  } else write(kernelAddr, opts.kernel.subarray(h.kernelOffset), "kernel");
  if (initrd && opts.initrd) write(initrd.addr, opts.initrd, "initrd");
  const cmdZ = new Uint8Array(cmdBytes.length + 1);
  cmdZ.set(cmdBytes);
  write(CMDLINE_ADDR, cmdZ, "command line");

  // The zero page: zeroed, the setup header copied from the image, then the loader's fields.
  const zp = new Uint8Array(ZeroPage.SIZE);
  const dv = new DataView(zp.buffer);
  zp.set(opts.kernel.subarray(Hdr.SETUP_SECTS, h.headerEnd), Hdr.SETUP_SECTS);
  zp[Hdr.TYPE_OF_LOADER] = LOADER_UNDEFINED;
  // Keep LOADED_HIGH; CAN_USE_HEAP with heap_end_ptr as QEMU sets it (irrelevant to the 64-bit entry).
  zp[Hdr.LOADFLAGS] = (h.loadflags | CAN_USE_HEAP) & 0xff;
  dv.setUint16(Hdr.HEAP_END_PTR, 0xfe00, true);
  dv.setUint16(Hdr.VID_MODE, 0xffff, true); // "normal" text mode (boot.rst, vid_mode)
  dv.setUint32(Hdr.CODE32_START, kernelAddr, true);
  dv.setUint32(Hdr.CMD_LINE_PTR, CMDLINE_ADDR, true);
  dv.setUint32(ZeroPage.EXT_CMD_LINE_PTR, 0, true);
  if (initrd) {
    dv.setUint32(Hdr.RAMDISK_IMAGE, initrd.addr, true);
    dv.setUint32(Hdr.RAMDISK_SIZE, initrd.size, true);
  }
  const e820 = e820Map(opts.memBytes).slice(0, E820_MAX_ENTRIES_ZEROPAGE);
  zp[ZeroPage.E820_ENTRIES] = e820.length;
  e820.forEach((e, i) => {
    const o = ZeroPage.E820_TABLE + i * 20;
    dv.setUint32(o, e.addr % 2 ** 32, true);
    dv.setUint32(o + 4, Math.floor(e.addr / 2 ** 32), true);
    dv.setUint32(o + 8, e.size % 2 ** 32, true);
    dv.setUint32(o + 12, Math.floor(e.size / 2 ** 32), true);
    dv.setUint32(o + 16, e.type, true);
  });
  write(ZERO_PAGE_ADDR, zp, "zero page");

  const entry = elf ? elf.entry : kernelAddr + ENTRY_64_OFFSET;
  let cpu: BootCpuState;
  try {
    cpu = longModeEntry(mem, entry, ZERO_PAGE_ADDR, BOOT_STACK_ADDR);
  } catch (e) {
    if (e instanceof BootStateError)
      throw new LinuxLoadError({ kind: "MemoryTooSmall", what: e.what, gpa: e.gpa });
    throw e;
  }
  return {
    header: h,
    cpu,
    kernelAddr,
    entry,
    zeroPage: ZERO_PAGE_ADDR,
    cmdlineAddr: CMDLINE_ADDR,
    initrd,
    e820,
    hostDecompressed: elf !== undefined,
  };
}

/** The vmlinux ELF in the bzImage's payload, or undefined when the guest has to inflate it. */
function unpackKernel(image: Uint8Array, h: BzImageHeader, memBytes: number): KernelElf | undefined {
  if (h.payloadLength === 0) return undefined;
  const start = h.kernelOffset + h.payloadOffset;
  if (start + h.payloadLength > image.length) {
    throw new LinuxLoadError({ kind: "TruncatedKernel", need: start + h.payloadLength, got: image.length });
  }
  try {
    return unpackPayload(image.subarray(start, start + h.payloadLength), memBytes);
  } catch (e) {
    if (e instanceof PayloadError) throw new LinuxLoadError({ kind: "BadPayload", why: e.message });
    throw e;
  }
}
