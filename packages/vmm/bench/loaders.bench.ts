import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { bench, describe } from "vitest";
import { loadLinux } from "../src/boot/linux.js";
import { loadMultiboot } from "../src/boot/multiboot.js";
import { MiB, ramRanges } from "../src/layout.js";
import { GuestRam } from "../src/memory.js";

const GUESTS = resolve(__dirname, "../../../guests");
const kernel = new Uint8Array(readFileSync(resolve(GUESTS, "bzImage")));
const initrd = new Uint8Array(readFileSync(resolve(GUESTS, "initramfs.cpio")));
const mb = new Uint8Array(readFileSync(resolve(GUESTS, "multiboot-test/multiboot-test.elf")));
const ram = new GuestRam(ramRanges(256 * MiB));

describe("loaders", () => {
  bench("loadLinux: bundled bzImage + initramfs into 256 MiB", () => {
    loadLinux(ram, { kernel, initrd, cmdline: "console=ttyS0", memBytes: 256 * MiB });
  });
  bench("loadMultiboot: test kernel", () => {
    loadMultiboot(ram, { kernel: mb, cmdline: "x", memBytes: 256 * MiB });
  });
});
