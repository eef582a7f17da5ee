// heap.ts: the CLI grows V8's young generation to its maximum at once, so that the long-lived
// decoded-instruction records get pretenured. Checked in child processes (V8 flags are global).
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const TSX = resolve(__dirname, "../../../node_modules/.bin/tsx");
const HEAP = resolve(__dirname, "../src/heap.ts");
const dir = mkdtempSync(join(tmpdir(), "tskvm-heap-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The young generation's size before and after each 10,000 of 60,000 surviving objects. */
function youngSizes(call: boolean): number[] {
  const script = join(dir, `child-${call}.ts`);
  writeFileSync(
    script,
    `import { getHeapSpaceStatistics } from "node:v8";
import { youngGenerationFullSizeAtOnce } from ${JSON.stringify(HEAP)};
if (${call}) youngGenerationFullSizeAtOnce();
const young = () => getHeapSpaceStatistics().find((s) => s.space_name === "new_space")!.space_size;
const keep: object[] = [];
const sizes = [young()];
for (let i = 0; i < 60_000; i++) {
  keep.push({ a: i, b: i, c: i });
  if (i % 10_000 === 9_999) sizes.push(young());
}
console.log(JSON.stringify(sizes), keep.length);
`,
  );
  const r = spawnSync(TSX, [script], { encoding: "utf8" });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout.split(" ")[0]!) as number[];
}

describe("youngGenerationFullSizeAtOnce", () => {
  it("makes the young generation's first growth go to a size V8's doubling has not reached", () => {
    const plain = youngSizes(false);
    const full = youngSizes(true);
    // Same start; without the call the first growth doubles it.
    expect(full[0]).toBe(plain[0]);
    expect(Math.max(...plain)).toBe(2 * plain[0]!);
    // With it, one growth, straight past that (to V8's maximum: 2 x 16 MiB on 64-bit Node 20).
    const grown = full.filter((s) => s !== full[0]);
    expect(grown.length).toBeGreaterThan(0);
    expect(new Set(grown).size).toBe(1);
    expect(grown[0]).toBeGreaterThanOrEqual(4 * plain[0]!);
  });
});
