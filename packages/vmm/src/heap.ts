/**
 * V8 heap tuning for the monitor process (the CLI owns the process; `createVm` embedders own
 * theirs and are left alone).
 *
 * A boot allocates ~150,000 decoded-instruction records (cpu-x86), nearly all of which live as long
 * as the VM. V8 allocates them in the young generation, copying each survivor out of it with every
 * scavenge, unless it pretenures their allocation site: it does so only after a scavenge that finds
 * both the young generation at its maximum size and at least 85% of the site's objects alive. From
 * its initial 1 MiB the young generation doubles per growth and reaches its maximum (16 MiB) only
 * ~0.5 s into a boot, just when Linux patches its own text (alternatives) and the records of those
 * pages die: the site is judged short-lived for good, and the boot then spends ~19 scavenges,
 * ~65 ms, copying records. Growing the young generation to its maximum at the first growth lets V8
 * see the records as the long-lived objects they are, before the patching.
 */
import { setFlagsFromString } from "node:v8";

/** Young generation growth factor: large enough to reach the maximum in one step. */
const GROWTH_FACTOR = 64;

/** Makes the young generation grow to its maximum size at its first growth. */
export function youngGenerationFullSizeAtOnce(): void {
  // Read by V8 at each growth of the young generation; safe to change while running.
  setFlagsFromString(`--semi-space-growth-factor=${GROWTH_FACTOR}`);
}
