import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ActionError, parseAction, parseActionLine } from "../src/actions.js";
import {
  ConfigError,
  DEFAULT_APPEND,
  parseBalloon,
  parseDisk,
  parseSize,
  parseVmOptions,
} from "../src/config.js";
import { GiB, MiB } from "../src/layout.js";

const bundled = { kernel: "/g/bzImage", gpuKernel: "/g/bzImage-gpu", initrd: "/g/initramfs.cpio" };

describe("sizes (QEMU -m habits)", () => {
  it.each([
    ["256", 256 * MiB],
    ["256M", 256 * MiB],
    ["256MiB", 256 * MiB],
    ["1G", GiB],
    ["1.5G", 1.5 * GiB],
    ["64k", 64 * 1024],
    [" 2g ", 2 * GiB],
  ])("%s", (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it.each(["", "M", "-1M", "1T", "0x10M", "1.0001M", "12Q", "1e3M"])("refuses %j", (text) => {
    expect(() => parseSize(text, "--mem")).toThrow(ConfigError);
  });
});

describe("--disk PATH[,ro]", () => {
  it("parses options", () => {
    expect(parseDisk("a.img")).toEqual({ path: "a.img", readOnly: false, transport: "pci" });
    expect(parseDisk("a.img,ro")).toEqual({ path: "a.img", readOnly: true, transport: "pci" });
    expect(parseDisk("a.img,mmio,rw")).toEqual({ path: "a.img", readOnly: false, transport: "mmio" });
  });
  it("refuses contradictions and unknown options", () => {
    expect(() => parseDisk("a.img,ro,rw")).toThrow("more than once");
    expect(() => parseDisk("a.img,pci,mmio")).toThrow("transport given more than once");
    expect(() => parseDisk(",ro")).toThrow("has no file path");
    expect(() => parseDisk("a.img,cache=none")).toThrow('unknown option "cache=none"');
  });
});

describe("parseVmOptions", () => {
  it("defaults to the bundled guest with its initramfs", () => {
    const c = parseVmOptions({}, bundled);
    expect(c).toMatchObject({
      kernel: "/g/bzImage",
      initrd: "/g/initramfs.cpio",
      append: DEFAULT_APPEND,
      memBytes: 128 * MiB, // QEMU's and Firecracker's default
      cpus: 1,
    });
    expect(parseVmOptions({ gpu: true }, bundled).kernel).toBe("/g/bzImage-gpu");
  });
  it("a user kernel gets no bundled initrd", () => {
    expect(parseVmOptions({ kernel: "k" }, bundled).initrd).toBeUndefined();
    expect(parseVmOptions({ initrd: "i" }, bundled)).toMatchObject({ kernel: "/g/bzImage", initrd: "i" });
  });
  it("--icount SHIFT: 0-10 as QEMU, host time without it", () => {
    expect(parseVmOptions({}, bundled).icount).toBeUndefined();
    expect(parseVmOptions({ icount: "0" }, bundled).icount).toBe(0);
    expect(parseVmOptions({ icount: 10 }, bundled).icount).toBe(10);
    for (const bad of ["11", "-1", "1.5", "", "auto", "0x3"])
      expect(() => parseVmOptions({ icount: bad }, bundled)).toThrow("--icount");
  });
  it("--kernel-decompress: host by default, guest on request, nothing else", () => {
    expect(parseVmOptions({}, bundled).kernelDecompress).toBe("host");
    expect(parseVmOptions({ kernelDecompress: "guest" }, bundled).kernelDecompress).toBe("guest");
    for (const bad of ["", "Host", "both"])
      expect(() => parseVmOptions({ kernelDecompress: bad }, bundled)).toThrow(
        `--kernel-decompress: "${bad}" is not "host" or "guest"`,
      );
  });
  it("--balloon [features]: reporting on and hinting off by default; a feature list changes them", () => {
    expect(parseVmOptions({}, bundled).balloon).toBeUndefined();
    expect(parseVmOptions({ balloon: false }, bundled).balloon).toBeUndefined();
    expect(parseVmOptions({ balloon: true }, bundled).balloon).toEqual({ reporting: true, hinting: false });
    expect(parseVmOptions({ balloon: "hint" }, bundled).balloon).toEqual({ reporting: true, hinting: true });
    expect(parseVmOptions({ balloon: "no-report, hint" }, bundled).balloon).toEqual({
      reporting: false,
      hinting: true,
    });
    expect(parseBalloon("report,no-hint")).toEqual({ reporting: true, hinting: false });
    for (const [bad, why] of [
      ["", 'unknown option ""'],
      ["fast", 'unknown option "fast" (known: report, no-report, hint, no-hint)'],
      ["hint,,report", 'unknown option ""'],
      ["hint,no-hint", 'hinting given more than once in "hint,no-hint"'],
      ["report,report", "reporting given more than once"],
    ])
      expect(() => parseVmOptions({ balloon: bad }, bundled)).toThrow(`--balloon: ${why}`);
  });
  it("refuses contradictions", () => {
    expect(() => parseVmOptions({ screenshot: "x.png" }, bundled)).toThrow("--screenshot needs --gpu");
    expect(() => parseVmOptions({ disk: ["a", "a,ro"] }, bundled)).toThrow("attached twice");
    expect(() => parseVmOptions({ append: "a\nb" }, bundled)).toThrow("NUL or newline");
  });
  it("fuzz: any option strings give a VmConfig or a ConfigError", () => {
    fc.assert(
      fc.property(
        fc.record(
          {
            mem: fc.string(),
            cpus: fc.string(),
            disk: fc.array(fc.string(), { maxLength: 3 }),
            net: fc.string(),
            screenshot: fc.string(),
            gpu: fc.boolean(),
            balloon: fc.oneof(fc.boolean(), fc.string(), fc.constantFrom("hint", "no-report,hint")),
            append: fc.string(),
          },
          { requiredKeys: [] },
        ),
        (o) => {
          try {
            const c = parseVmOptions(o, bundled);
            expect(c.memBytes % 4096).toBe(0);
            expect(c.cpus).toBeGreaterThanOrEqual(1);
          } catch (e) {
            if (!(e instanceof ConfigError)) throw e;
            expect(e.message).not.toContain("\n");
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe("VmAction: the control surface, apart from its transport", () => {
  it("parses JSON-shaped actions", () => {
    expect(parseAction({ kind: "pause" })).toEqual({ kind: "pause" });
    expect(parseAction({ kind: "balloon", bytes: 128 * MiB })).toEqual({ kind: "balloon", bytes: 128 * MiB });
    expect(parseAction({ kind: "balloon", bytes: "64M" })).toEqual({ kind: "balloon", bytes: 64 * MiB });
    expect(parseAction({ kind: "screenshot", path: "a.png" })).toEqual({ kind: "screenshot", path: "a.png" });
  });
  it("parses monitor lines", () => {
    expect(parseActionLine(" stop ")).toEqual({ kind: "stop" });
    expect(parseActionLine("balloon 1G")).toEqual({ kind: "balloon", bytes: GiB });
    expect(parseActionLine("screenshot out.png")).toEqual({ kind: "screenshot", path: "out.png" });
  });
  it.each([
    [null, "an action is an object"],
    [{ kind: "reboot" }, 'unknown action "reboot"'],
    [{ kind: "pause", now: true }, 'unknown field "now"'],
    [{ kind: "balloon", bytes: 1.5 }, "not a whole number of 4 KiB pages"],
    [{ kind: "balloon" }, "bytes must be a number"],
    [{ kind: "screenshot", path: "" }, "non-empty string"],
  ])("refuses %j", (input, msg) => {
    expect(() => parseAction(input)).toThrow(msg);
  });
  it("fuzz: any line gives an action or an ActionError", () => {
    fc.assert(
      fc.property(fc.string(), (line) => {
        try {
          parseActionLine(line);
        } catch (e) {
          if (!(e instanceof ActionError)) throw e;
        }
      }),
    );
  });
});
