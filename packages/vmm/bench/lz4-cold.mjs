// The host-side inflation of the bundled kernel's LZ4 payload, cold: the first call in a fresh
// process is what a boot pays (run `npx tsup` first; it loads packages/vmm/dist). Prints three
// calls; run it a few times, one process at a time.
//   node bench/lz4-cold.mjs
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { unpackPayload } from "../dist/index.js";

const bz = readFileSync(resolve(fileURLToPath(import.meta.url), "../../../../guests/bzImage"));
// The setup sectors (0 means 4), then the payload at its offset and length in the setup header.
const setup = (bz[0x1f1] || 4) + 1;
const at = setup * 512 + bz.readUInt32LE(0x248);
const payload = bz.subarray(at, at + bz.readUInt32LE(0x24c));
const ms = [];
for (let k = 0; k < 3; k++) {
  const t = performance.now();
  unpackPayload(payload, 64 << 20);
  ms.push((performance.now() - t).toFixed(1));
}
console.log(`unpackPayload (bundled kernel): ${ms.join(" / ")} ms (first call cold)`);
