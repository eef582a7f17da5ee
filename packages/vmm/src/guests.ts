/**
 * Where the bundled guest images are: `guests/` at the repository root, three levels above
 * this module both in `src/` and in the built `dist/`; `TSKVM_GUESTS_DIR` overrides it.
 */
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { BundledGuest } from "./config.js";

/** The bundled guests folder. */
export function guestsDir(env: NodeJS.ProcessEnv = process.env): string {
  const override = env.TSKVM_GUESTS_DIR;
  if (override) return resolve(override);
  return resolve(dirname(fileURLToPath(import.meta.url)), "../../../guests");
}

/** Paths of the bundled kernel, gpu kernel and initramfs. */
export function bundledGuest(dir = guestsDir()): BundledGuest & { multibootTest: string } {
  return {
    kernel: join(dir, "bzImage"),
    gpuKernel: join(dir, "bzImage-gpu"),
    initrd: join(dir, "initramfs.cpio"),
    multibootTest: join(dir, "multiboot-test", "multiboot-test.elf"),
  };
}
