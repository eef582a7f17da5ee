import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BOOT_CS, BOOT_DS, CR0_PE, CR0_PG, CR4_PAE, EFER_LMA, EFER_LME } from "../src/boot/cpu-state.js";
import { Hdr, LinuxLoadError, loadLinux, parseBzImage, ZeroPage } from "../src/boot/linux.js";
import {
  CMDLINE_ADDR,
  E820_RAM,
  MiB,
  PD_ADDR,
  PDPT_ADDR,
  PML4_ADDR,
  ramRanges,
  ZERO_PAGE_ADDR,
} from "../src/layout.js";
import { GuestRam } from "../src/memory.js";

const GUESTS = resolve(__dirname, "../../../guests");
const bzImage = new Uint8Array(readFileSync(resolve(GUESTS, "bzImage")));
const initramfs = new Uint8Array(readFileSync(resolve(GUESTS, "initramfs.cpio")));

function ram(mem: number): GuestRam {
  return new GuestRam(ramRanges(mem));
}
function rd32(r: GuestRam, gpa: number): number {
  const b = new Uint8Array(4);
  expect(r.read(gpa, b)).toBe(true);
  return new DataView(b.buffer).getUint32(0, true);
}
function rdBytes(r: GuestRam, gpa: number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  expect(r.read(gpa, b)).toBe(true);
  return b;
}

interface Synth {
  version?: number;
  setupSects?: number;
  loadflags?: number;
  xloadflags?: number;
  kernelBytes?: number;
  relocatable?: boolean;
  initSize?: number;
  prefAddress?: number;
  cmdlineSize?: number;
  initrdAddrMax?: number;
}

/** A minimal bzImage with a valid setup header (boot.rst field by field). */
function synthBzImage(o: Synth = {}): Uint8Array {
  const setupSects = o.setupSects ?? 4;
  const kernelBytes = o.kernelBytes ?? 0x2000;
  const img = new Uint8Array((setupSects + 1) * 512 + kernelBytes);
  const dv = new DataView(img.buffer);
  img[Hdr.SETUP_SECTS] = setupSects;
  dv.setUint32(Hdr.SYSSIZE, Math.floor(kernelBytes / 16), true);
  dv.setUint16(Hdr.BOOT_FLAG, 0xaa55, true);
  img[0x200] = 0xeb; // jmp short
  img[0x201] = 0x6a; // header ends at 0x26c
  dv.setUint32(Hdr.HEADER, 0x53726448, true);
  dv.setUint16(Hdr.VERSION, o.version ?? 0x020f, true);
  img[Hdr.LOADFLAGS] = o.loadflags ?? 1;
  dv.setUint32(Hdr.INITRD_ADDR_MAX, o.initrdAddrMax ?? 0x7fffffff, true);
  dv.setUint32(Hdr.KERNEL_ALIGNMENT, 0x200000, true);
  img[Hdr.RELOCATABLE_KERNEL] = o.relocatable === false ? 0 : 1;
  dv.setUint16(Hdr.XLOADFLAGS, o.xloadflags ?? 1, true);
  dv.setUint32(Hdr.CMDLINE_SIZE, o.cmdlineSize ?? 2047, true);
  dv.setUint32(Hdr.PREF_ADDRESS, o.prefAddress ?? 0x1000000, true);
  dv.setUint32(Hdr.INIT_SIZE, o.initSize ?? 0x100000, true);
  // A recognisable kernel body.
  for (let i = 0; i < kernelBytes; i++) img[(setupSects + 1) * 512 + i] = (i * 7) & 0xff;
  return img;
}

function kindOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof LinuxLoadError) return e.detail.kind;
    throw e;
  }
  return "none";
}

describe("bzImage header (boot.rst)", () => {
  it("parses the bundled kernel: protocol 2.15, 64-bit entry, LZ4 payload, not relocatable", () => {
    const h = parseBzImage(bzImage);
    expect(h.version).toBe(0x020f);
    expect(h.xloadflags & 1).toBe(1);
    expect(h.relocatable).toBe(false);
    expect(h.prefAddress).toBe(0x1000000);
    expect(h.cmdlineSize).toBe(2047);
    expect(h.kernelOffset).toBe((h.setupSects + 1) * 512);
    expect(h.initSize).toBeGreaterThan(h.kernelSize);
    // The payload is LZ4 (legacy frame magic 0x184c2102) at payload_offset in the protected-mode kernel.
    const payloadOffset = new DataView(bzImage.buffer).getUint32(0x248, true);
    const magic = new DataView(bzImage.buffer).getUint32(h.kernelOffset + payloadOffset, true);
    expect(magic).toBe(0x184c2102);
  });

  it.each([
    ["empty file", new Uint8Array(0), "TooShort"],
    ["ELF instead of bzImage", new Uint8Array(4096).fill(0x7f), "BadBootFlag"],
    [
      "the multiboot test kernel",
      new Uint8Array(readFileSync(resolve(GUESTS, "multiboot-test/multiboot-test.elf"))),
      "BadBootFlag",
    ],
  ])("rejects %s", (_name, img, kind) => {
    expect(kindOf(() => parseBzImage(img))).toBe(kind);
  });

  it("rejects a boot sector without HdrS (a pre-2.00 zImage)", () => {
    const img = synthBzImage();
    img[Hdr.HEADER] = 0;
    expect(kindOf(() => parseBzImage(img))).toBe("BadMagic");
  });

  it("rejects an old boot protocol with the version in the message", () => {
    const img = synthBzImage({ version: 0x0205 });
    expect(() => parseBzImage(img)).toThrow("boot protocol 2.05 is too old: tskvm needs 2.06 or later");
  });

  it("rejects a zImage (LOADED_HIGH clear) and a kernel without the 64-bit entry", () => {
    expect(kindOf(() => parseBzImage(synthBzImage({ loadflags: 0 })))).toBe("NotLoadedHigh");
    expect(kindOf(() => parseBzImage(synthBzImage({ xloadflags: 0 })))).toBe("No64BitEntry");
    // 2.11 has no xloadflags field: no 64-bit entry can be assumed.
    expect(kindOf(() => parseBzImage(synthBzImage({ version: 0x020b })))).toBe("No64BitEntry");
  });

  it("setup_sects 0 means 4", () => {
    const img = synthBzImage({ setupSects: 4 });
    img[Hdr.SETUP_SECTS] = 0;
    expect(parseBzImage(img).kernelOffset).toBe(5 * 512);
  });

  it("rejects the real kernel truncated inside the setup and inside the payload", () => {
    const h = parseBzImage(bzImage);
    expect(kindOf(() => parseBzImage(bzImage.subarray(0, h.kernelOffset - 100)))).toBe("TruncatedSetup");
    expect(kindOf(() => parseBzImage(bzImage.subarray(0, h.kernelOffset + 100000)))).toBe("TruncatedKernel");
    expect(kindOf(() => parseBzImage(bzImage.subarray(0, 0x100)))).toBe("TooShort");
  });
});

describe("loadLinux (64-bit boot protocol)", () => {
  it("loads the bundled kernel and initramfs: zero page, e820, command line, initrd, entry state", () => {
    const mem = 256 * MiB;
    const r = ram(mem);
    const res = loadLinux(r, {
      kernel: bzImage,
      initrd: initramfs,
      cmdline: "console=ttyS0",
      memBytes: mem,
      decompress: "guest",
    });
    const h = res.header;
    expect(res.hostDecompressed).toBe(false);
    // The protected-mode kernel at 1 MiB, entry at +0x200.
    expect(res.kernelAddr).toBe(0x100000);
    expect(res.entry).toBe(0x100200);
    expect(rdBytes(r, 0x100000, 64)).toEqual(bzImage.subarray(h.kernelOffset, h.kernelOffset + 64));
    const tail = bzImage.length - 64;
    expect(rdBytes(r, 0x100000 + tail - h.kernelOffset, 64)).toEqual(bzImage.subarray(tail));
    // The setup header copied into boot_params, then the loader's fields.
    expect(rd32(r, ZERO_PAGE_ADDR + Hdr.HEADER)).toBe(0x53726448);
    expect(rdBytes(r, ZERO_PAGE_ADDR + Hdr.TYPE_OF_LOADER, 1)[0]).toBe(0xff);
    expect(rd32(r, ZERO_PAGE_ADDR + Hdr.CMD_LINE_PTR)).toBe(CMDLINE_ADDR);
    expect(new TextDecoder().decode(rdBytes(r, CMDLINE_ADDR, 14))).toBe("console=ttyS0\0");
    // initrd: page-aligned, at the top of RAM, above the kernel's runtime area (16 MiB + init_size).
    const initrd = res.initrd!;
    expect(rd32(r, ZERO_PAGE_ADDR + Hdr.RAMDISK_IMAGE)).toBe(initrd.addr);
    expect(rd32(r, ZERO_PAGE_ADDR + Hdr.RAMDISK_SIZE)).toBe(initramfs.length);
    expect(initrd.addr % 4096).toBe(0);
    expect(initrd.addr + initrd.size).toBeLessThanOrEqual(mem);
    expect(mem - (initrd.addr + initrd.size)).toBeLessThan(4096);
    expect(initrd.addr).toBeGreaterThanOrEqual(h.prefAddress + h.initSize);
    expect(rdBytes(r, initrd.addr, 6)).toEqual(new TextEncoder().encode("070701"));
    // e820 in the zero page: RAM at 0 and from 1 MiB to the end of memory.
    const n = rdBytes(r, ZERO_PAGE_ADDR + ZeroPage.E820_ENTRIES, 1)[0]!;
    expect(n).toBe(res.e820.length);
    const last = ZERO_PAGE_ADDR + ZeroPage.E820_TABLE + (n - 1) * 20;
    expect(rd32(r, last)).toBe(0x100000);
    expect(rd32(r, last + 8)).toBe(mem - 0x100000);
    expect(rd32(r, last + 16)).toBe(E820_RAM);
    // The vCPU: long mode on identity paging, __BOOT_CS/__BOOT_DS, IF=0, RSI = zero page.
    const c = res.cpu;
    expect(c.mode).toBe("long");
    expect(c.regs.rip).toBe(0x100200);
    expect(c.regs.rsi).toBe(ZERO_PAGE_ADDR);
    expect(c.regs.rflags & 0x200).toBe(0);
    expect(c.cs.selector).toBe(BOOT_CS);
    expect(c.cs.l && !c.cs.db).toBe(true);
    for (const s of [c.ds, c.es, c.ss]) expect(s.selector).toBe(BOOT_DS);
    expect(c.cr0).toBe(0x80000011); // PG | ET | PE, as an unsigned value (KVM_SET_SREGS takes a u64)
    expect(c.cr0 & CR0_PE && c.cr0 & CR0_PG).toBeTruthy();
    expect(c.cr4 & CR4_PAE).toBe(CR4_PAE);
    expect(c.efer).toBe(EFER_LME | EFER_LMA);
    expect(c.cr3).toBe(PML4_ADDR);
    expect(rd32(r, PML4_ADDR) & ~0xfff).toBe(PDPT_ADDR);
    expect(rd32(r, PDPT_ADDR + 8) & ~0xfff).toBe(PD_ADDR + 0x1000);
    // PD entry 8 maps 16 MiB..18 MiB with a 2 MiB page, present and writable.
    expect(rd32(r, PD_ADDR + 8 * 8)).toBe(0x1000000 | 0x83);
    // The GDT descriptors the protocol names: a 64-bit code segment at 0x10, flat data at 0x18.
    const gdt = rdBytes(r, c.gdt.base, c.gdt.limit + 1);
    const dv = new DataView(gdt.buffer);
    expect(dv.getUint32(BOOT_CS + 4, true)).toBe(0x00af9b00);
    expect(dv.getUint32(BOOT_DS + 4, true)).toBe(0x00cf9300);
    expect(dv.getUint32(BOOT_DS, true)).toBe(0x0000ffff);
  });

  it("a non-relocatable kernel needs RAM up to pref_address + init_size", () => {
    const h = parseBzImage(bzImage);
    const need = h.prefAddress + h.initSize;
    const tooSmall = Math.floor((need - 1) / MiB) * MiB;
    const guest = { kernel: bzImage, decompress: "guest" } as const;
    expect(kindOf(() => loadLinux(ram(tooSmall), { ...guest, memBytes: tooSmall }))).toBe("KernelDoesNotFit");
    const enough = Math.ceil(need / MiB) * MiB;
    expect(loadLinux(ram(enough), { ...guest, memBytes: enough }).initrd).toBeUndefined();
  });

  it("an initrd larger than memory is refused with one clear line", () => {
    const mem = 64 * MiB;
    const big = new Uint8Array(64 * MiB);
    expect(() => loadLinux(ram(mem), { kernel: bzImage, initrd: big, memBytes: mem })).toThrow(
      /^initrd of 67108864 bytes does not fit: \d+ bytes of RAM are free below the initrd limit$/,
    );
  });

  it("the initrd stays below initrd_addr_max (the highest byte it may occupy)", () => {
    const img = synthBzImage({ initrdAddrMax: 0x37ffffff });
    const mem = 2048 * MiB;
    const res = loadLinux(ram(mem), { kernel: img, initrd: new Uint8Array(131072), memBytes: mem });
    // boot.rst's own example: a 131072-byte ramdisk and 0x37FFFFFF may start at 0x37FE0000.
    expect(res.initrd!.addr).toBe(0x37fe0000);
  });

  it("a relocatable kernel's runtime area starts at align_up(load address, kernel_alignment)", () => {
    const img = synthBzImage({ relocatable: true, initSize: 62 * MiB });
    // 1 MiB aligned up to 2 MiB, + 62 MiB = 64 MiB: exactly fits 64 MiB of RAM.
    expect(kindOf(() => loadLinux(ram(64 * MiB), { kernel: img, memBytes: 64 * MiB }))).toBe("none");
    expect(kindOf(() => loadLinux(ram(63 * MiB), { kernel: img, memBytes: 63 * MiB }))).toBe(
      "KernelDoesNotFit",
    );
  });

  it("the command line is limited to cmdline_size bytes (the NUL not counted)", () => {
    const img = synthBzImage({ cmdlineSize: 16 });
    const mem = 64 * MiB;
    expect(kindOf(() => loadLinux(ram(mem), { kernel: img, cmdline: "x".repeat(16), memBytes: mem }))).toBe(
      "none",
    );
    expect(() => loadLinux(ram(mem), { kernel: img, cmdline: "x".repeat(17), memBytes: mem })).toThrow(
      "kernel command line is 17 bytes, the kernel accepts at most 16",
    );
  });

  it("fuzz: any bytes give a load or a LinuxLoadError, never another exception", () => {
    const base = synthBzImage({ kernelBytes: 0x400 });
    const mem = 32 * MiB;
    const r = ram(mem);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 16 }),
        fc.nat(base.length),
        fc.option(fc.nat(64 * MiB), { nil: undefined }),
        (muts, cut, initrdSize) => {
          const img = base.slice(0, Math.max(cut, 0x100));
          for (const [at, v] of muts) if (at < img.length) img[at] = v;
          try {
            loadLinux(r, {
              kernel: img,
              initrd: initrdSize === undefined ? undefined : new Uint8Array(initrdSize % (40 * MiB)),
              memBytes: mem,
            });
          } catch (e) {
            if (!(e instanceof LinuxLoadError)) throw e;
            expect(e.message).not.toContain("\n");
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it("fuzz: random header fields on the synthetic image never throw anything but LinuxLoadError", () => {
    const mem = 32 * MiB;
    const r = ram(mem);
    fc.assert(
      fc.property(
        fc.record({
          version: fc.integer({ min: 0, max: 0xffff }),
          setupSects: fc.integer({ min: 0, max: 255 }),
          loadflags: fc.integer({ min: 0, max: 255 }),
          xloadflags: fc.integer({ min: 0, max: 0xffff }),
          relocatable: fc.boolean(),
          initSize: fc.nat(),
          prefAddress: fc.nat(),
          cmdlineSize: fc.nat(),
          initrdAddrMax: fc.nat(),
        }),
        (o) => {
          try {
            loadLinux(r, {
              kernel: synthBzImage({ ...o, kernelBytes: 0x400 }),
              cmdline: "console=ttyS0",
              memBytes: mem,
            });
          } catch (e) {
            if (!(e instanceof LinuxLoadError)) throw e;
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
