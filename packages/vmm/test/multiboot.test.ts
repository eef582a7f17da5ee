import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CR0_PE, CR0_PG } from "../src/boot/cpu-state.js";
import {
  findMultibootHeader,
  loadMultiboot,
  MbInfo,
  MbInfoFlag,
  MULTIBOOT_BOOTLOADER_MAGIC,
  MultibootLoadError,
} from "../src/boot/multiboot.js";
import { MiB, MULTIBOOT_INFO_ADDR, ramRanges } from "../src/layout.js";
import { GuestRam } from "../src/memory.js";

const DIR = resolve(__dirname, "../../../guests/multiboot-test");
const elf = new Uint8Array(readFileSync(resolve(DIR, "multiboot-test.elf")));
const aout = new Uint8Array(readFileSync(resolve(DIR, "multiboot-test-aout.bin")));

const mem = 32 * MiB;
const ram = () => new GuestRam(ramRanges(mem));
function rd32(r: GuestRam, gpa: number): number {
  const b = new Uint8Array(4);
  expect(r.read(gpa, b)).toBe(true);
  return new DataView(b.buffer).getUint32(0, true);
}
function cstr(r: GuestRam, gpa: number): string {
  const b = new Uint8Array(256);
  r.read(gpa, b);
  return new TextDecoder().decode(b.subarray(0, b.indexOf(0)));
}
function kindOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof MultibootLoadError) return e.detail.kind;
    throw e;
  }
  return "none";
}

/** A flat a.out-kludge image: header at `at`, loaded at 1 MiB. */
function synthAout(flags = 0x00010003, at = 0): Uint8Array {
  const img = new Uint8Array(0x1000);
  const dv = new DataView(img.buffer);
  dv.setUint32(at, 0x1badb002, true);
  dv.setUint32(at + 4, flags, true);
  dv.setUint32(at + 8, -(0x1badb002 + flags) >>> 0, true);
  dv.setUint32(at + 12, 0x100000 + at, true); // header_addr
  dv.setUint32(at + 16, 0x100000, true); // load_addr
  dv.setUint32(at + 20, 0x100800, true); // load_end_addr
  dv.setUint32(at + 24, 0x102000, true); // bss_end_addr
  dv.setUint32(at + 28, 0x100040, true); // entry_addr
  img.fill(0xcc, 0x800); // past load_end_addr: must not be loaded
  return img;
}

describe("multiboot v1 header (spec 3.1)", () => {
  it("finds the header of both builds of the test kernel", () => {
    expect(findMultibootHeader(elf).flags & 0x10000).toBe(0);
    const h = findMultibootHeader(aout);
    expect(h.offset).toBe(0);
    expect(h.addresses?.loadAddr).toBe(0x100000);
  });

  it("ignores a magic with a bad checksum and finds none", () => {
    const img = synthAout();
    img[8] = (img[8] ?? 0) ^ 1;
    expect(kindOf(() => findMultibootHeader(img))).toBe("NoHeader");
  });

  it("searches only the first 8 KiB, 32-bit aligned", () => {
    const late = new Uint8Array(0x3000);
    late.set(synthAout().subarray(0, 32), 0x2000);
    expect(kindOf(() => findMultibootHeader(late))).toBe("NoHeader");
    const unaligned = new Uint8Array(0x1000);
    unaligned.set(synthAout().subarray(0, 32), 2);
    expect(kindOf(() => findMultibootHeader(unaligned))).toBe("NoHeader");
    const ok = new Uint8Array(0x2000);
    ok.set(synthAout().subarray(0, 32), 0x1000);
    expect(findMultibootHeader(ok).offset).toBe(0x1000);
  });

  it("fails on a required feature it cannot provide (video mode, unknown bits 0-15)", () => {
    expect(kindOf(() => findMultibootHeader(synthAout(0x00010007)))).toBe("UnsupportedFlags");
    expect(kindOf(() => findMultibootHeader(synthAout(0x00018003)))).toBe("UnsupportedFlags");
    // Bits 16-31 are optional: an unknown one is ignored.
    expect(kindOf(() => findMultibootHeader(synthAout(0x00110003)))).toBe("none");
  });
});

describe("loadMultiboot", () => {
  it("loads the ELF test kernel: segments at p_paddr, EAX/EBX, 32-bit protected mode without paging", () => {
    const r = ram();
    const res = loadMultiboot(r, { kernel: elf, cmdline: "hello world", memBytes: mem });
    expect(res.entry).toBe(0x10000c);
    const c = res.cpu;
    expect(c.mode).toBe("protected");
    expect(c.regs.rax).toBe(MULTIBOOT_BOOTLOADER_MAGIC);
    expect(c.regs.rbx).toBe(MULTIBOOT_INFO_ADDR);
    expect(c.regs.rip).toBe(0x10000c);
    expect(c.cr0 & CR0_PE).toBe(CR0_PE);
    expect(c.cr0 & CR0_PG).toBe(0);
    expect(c.regs.rflags & 0x200).toBe(0); // IF = 0
    expect(c.regs.rflags & 0x20000).toBe(0); // VM = 0
    expect(c.cs.db && !c.cs.l && c.cs.limit === 0xffffffff && c.cs.base === 0).toBe(true);
    expect(c.ds.limit).toBe(0xffffffff);
    // The header's magic is in guest memory at 1 MiB (first PT_LOAD at file offset 0x1000).
    expect(rd32(r, 0x100000)).toBe(0x1badb002);
    // Info: memory, cmdline, mmap, loader name.
    const flags = rd32(r, MULTIBOOT_INFO_ADDR + MbInfo.FLAGS);
    for (const f of [MbInfoFlag.MEMORY, MbInfoFlag.CMDLINE, MbInfoFlag.MMAP, MbInfoFlag.LOADER_NAME]) {
      expect(flags & f).toBe(f);
    }
    expect(flags & MbInfoFlag.MODS).toBe(0);
    expect(rd32(r, MULTIBOOT_INFO_ADDR + MbInfo.MEM_LOWER)).toBe(640);
    expect(rd32(r, MULTIBOOT_INFO_ADDR + MbInfo.MEM_UPPER)).toBe((mem - MiB) / 1024);
    expect(cstr(r, rd32(r, MULTIBOOT_INFO_ADDR + MbInfo.CMDLINE))).toBe("hello world");
    expect(cstr(r, rd32(r, MULTIBOOT_INFO_ADDR + MbInfo.BOOT_LOADER_NAME))).toBe("tskvm");
    // mmap entries: size field 20, then base, length, type; the last is RAM from 1 MiB.
    const len = rd32(r, MULTIBOOT_INFO_ADDR + MbInfo.MMAP_LENGTH);
    const at = rd32(r, MULTIBOOT_INFO_ADDR + MbInfo.MMAP_ADDR);
    expect(len % 24).toBe(0);
    const last = at + len - 24;
    expect(rd32(r, last)).toBe(20);
    expect(rd32(r, last + 4)).toBe(MiB);
    expect(rd32(r, last + 12)).toBe(mem - MiB);
    expect(rd32(r, last + 20)).toBe(1);
  });

  it("loads the a.out-kludge build: the file from load_addr, bss zeroed, entry from the header", () => {
    const r = ram();
    // Dirty the bss area first: the loader must zero it.
    r.write(0x100000, new Uint8Array(0x2000).fill(0xee));
    const res = loadMultiboot(r, { kernel: aout, memBytes: mem });
    expect(res.entry).toBe(new DataView(aout.buffer).getUint32(28, true));
    const got = new Uint8Array(aout.length);
    r.read(0x100000, got);
    expect(got).toEqual(aout);
    const bssEnd = new DataView(aout.buffer).getUint32(24, true);
    const bss = new Uint8Array(bssEnd - 0x100000 - aout.length);
    r.read(0x100000 + aout.length, bss);
    expect(bss.every((b) => b === 0)).toBe(true);
    expect(res.kernelEnd).toBe(bssEnd);
  });

  it("honours load_end_addr and bss_end_addr of a synthetic image", () => {
    const r = ram();
    r.write(0x100000, new Uint8Array(0x3000).fill(0xee));
    loadMultiboot(r, { kernel: synthAout(), memBytes: mem });
    const b = new Uint8Array(0x2000);
    r.read(0x100000, b);
    expect(b.subarray(0x800).every((x) => x === 0)).toBe(true); // bss, not the 0xcc tail
    const after = new Uint8Array(1);
    r.read(0x102000, after);
    expect(after[0]).toBe(0xee); // untouched past bss_end_addr
  });

  it("places modules page-aligned after the kernel with their strings", () => {
    const r = ram();
    const res = loadMultiboot(r, {
      kernel: elf,
      memBytes: mem,
      modules: [
        { data: new Uint8Array([1, 2, 3]), cmdline: "mod-a x=1" },
        { data: new Uint8Array(5000).fill(9), cmdline: "mod-b" },
      ],
    });
    expect(res.modules).toHaveLength(2);
    expect(res.modules[0]!.start % 4096).toBe(0);
    expect(res.modules[0]!.start).toBeGreaterThanOrEqual(res.kernelEnd);
    expect(res.modules[1]!.start % 4096).toBe(0);
    expect(res.modules[1]!.start).toBeGreaterThanOrEqual(res.modules[0]!.end);
    const info = MULTIBOOT_INFO_ADDR;
    expect(rd32(r, info + MbInfo.FLAGS) & MbInfoFlag.MODS).toBe(MbInfoFlag.MODS);
    expect(rd32(r, info + MbInfo.MODS_COUNT)).toBe(2);
    const list = rd32(r, info + MbInfo.MODS_ADDR);
    expect(rd32(r, list)).toBe(res.modules[0]!.start);
    expect(rd32(r, list + 4)).toBe(res.modules[0]!.start + 3);
    expect(cstr(r, rd32(r, list + 8))).toBe("mod-a x=1");
    expect(cstr(r, rd32(r, list + 16 + 8))).toBe("mod-b");
    const m = new Uint8Array(3);
    r.read(res.modules[0]!.start, m);
    expect([...m]).toEqual([1, 2, 3]);
  });

  it("rejects bad a.out address fields, ELF64, and segments outside RAM", () => {
    const bad = synthAout();
    new DataView(bad.buffer).setUint32(16, 0x100010, true); // load_addr > header_addr
    expect(kindOf(() => loadMultiboot(ram(), { kernel: bad, memBytes: mem }))).toBe("BadAddressFields");
    const entryOut = synthAout();
    new DataView(entryOut.buffer).setUint32(28, 0x200000, true);
    expect(kindOf(() => loadMultiboot(ram(), { kernel: entryOut, memBytes: mem }))).toBe("BadAddressFields");
    const elf64 = elf.slice();
    elf64[4] = 2;
    expect(() => loadMultiboot(ram(), { kernel: elf64, memBytes: mem })).toThrow("it is ELF64");
    expect(kindOf(() => loadMultiboot(ram(), { kernel: elf, memBytes: 1 * MiB }))).toBe("NotInRam");
    expect(kindOf(() => loadMultiboot(ram(), { kernel: elf.subarray(0, 0x1100), memBytes: mem }))).toBe(
      "BadElf",
    );
  });

  it("fuzz: any mutation gives a load or a MultibootLoadError, never another exception", () => {
    const r = ram();
    fc.assert(
      fc.property(
        fc.constantFrom(elf, aout, synthAout()),
        fc.array(fc.tuple(fc.nat(0x1200), fc.integer({ min: 0, max: 255 })), { maxLength: 12 }),
        fc.nat(0x1400),
        (base, muts, cut) => {
          const img = base.slice(0, cut);
          for (const [at, v] of muts) if (at < img.length) img[at] = v;
          // Keep a valid checksum half the time so the later steps are reached.
          if (img.length >= 12 && muts.length % 2 === 0) {
            const dv = new DataView(img.buffer, img.byteOffset);
            const off = base === elf ? 0x1000 : 0;
            if (off + 12 <= img.length) {
              dv.setUint32(off, 0x1badb002, true);
              dv.setUint32(off + 8, -(0x1badb002 + dv.getUint32(off + 4, true)) >>> 0, true);
            }
          }
          try {
            loadMultiboot(r, { kernel: img, cmdline: "x", memBytes: mem });
          } catch (e) {
            if (!(e instanceof MultibootLoadError)) throw e;
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
