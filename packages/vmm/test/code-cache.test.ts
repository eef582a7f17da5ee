// The `tskvm` binary's V8 code cache (src/code-cache.ts, src/tskvm.ts): what a run finds, when it
// writes, and that nothing about the cache can stop or change a run.
import { spawn, spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { codeCacheDir, runWithCodeCache } from "../src/code-cache.js";

let tmp = "";
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "tskvm-code-cache-"));
});
afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A CommonJS bundle that records, on globalThis, how it ran. */
function writeBundle(dir: string, value: number): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "bundle.cjs");
  writeFileSync(
    file,
    [
      "#!/usr/bin/env node",
      `"use strict";`,
      `const path = require("node:path");`,
      `function square(x) { return x * x; }`,
      `module.exports.value = ${value};`,
      `globalThis.__bundleRan = { value: square(${value}), file: __filename, dir: __dirname, sep: path.sep };`,
      `globalThis.__bundleThrow = () => { throw new Error("from line 7"); };`,
      "",
    ].join("\n"),
  );
  return file;
}

/** A bundle in tmp/`name` whose cache is written (by a first run) in tmp/`name`/cache. */
async function withWrittenCache(name: string, value: number) {
  const dir = join(tmp, name);
  const cacheDir = join(dir, "cache");
  const bundle = writeBundle(dir, value);
  const { file } = runWithCodeCache(bundle, { dir: cacheDir, writeAfterMs: 0 });
  await tick(30);
  return { dir, cacheDir, bundle, file: file! };
}

type Ran = { value: number; file: string; dir: string; sep: string };
const ran = () => (globalThis as unknown as { __bundleRan: Ran }).__bundleRan;

describe("runWithCodeCache", () => {
  it("runs the bundle as CommonJS: exports, require, __filename, __dirname, a #! line", () => {
    const dir = join(tmp, "plain");
    const bundle = writeBundle(dir, 7);
    const r = runWithCodeCache(bundle, { dir: undefined, writeAfterMs: 0 });
    expect(r).toEqual({ state: "off", file: undefined });
    expect(ran()).toEqual({ value: 49, file: bundle, dir, sep: "/" });
    // Stack traces carry the bundle's own file and line numbers.
    const stack = (() => {
      try {
        (globalThis as unknown as { __bundleThrow: () => void }).__bundleThrow();
      } catch (e) {
        return (e as Error).stack ?? "";
      }
      return "";
    })();
    expect(stack).toContain(`${bundle}:7:`);
  });

  it("writes a cache after writeAfterMs, which the next run uses", async () => {
    const dir = join(tmp, "cycle");
    const cacheDir = join(dir, "cache");
    const bundle = writeBundle(dir, 3);
    const first = runWithCodeCache(bundle, { dir: cacheDir, writeAfterMs: 20 });
    expect(first.state).toBe("absent");
    expect(first.file?.startsWith(cacheDir)).toBe(true);
    expect(existsSync(first.file!)).toBe(false);
    await tick(80);
    expect(existsSync(first.file!)).toBe(true);
    expect(readFileSync(first.file!).subarray(0, 8).toString("latin1")).toBe("TSKVMCC1");
    // Only the cache file: the temporary file was renamed.
    expect(readdirSync(cacheDir)).toEqual([first.file!.slice(cacheDir.length + 1)]);
    const second = runWithCodeCache(bundle, { dir: cacheDir, writeAfterMs: 20 });
    expect(second).toEqual({ state: "accepted", file: first.file });
    expect(ran().value).toBe(9);
  });

  it("does not use a cache made for an earlier build of the bundle, and replaces it", async () => {
    const { dir, cacheDir, bundle, file } = await withWrittenCache("rebuilt", 4);
    const old = readFileSync(file);
    // The same length of source (V8's own check would pass), another value and modification time.
    writeBundle(dir, 5);
    utimesSync(bundle, new Date(), new Date(Date.now() + 5000));
    const second = runWithCodeCache(bundle, { dir: cacheDir, writeAfterMs: 0 });
    expect(second.state).toBe("absent");
    expect(ran().value).toBe(25);
    await tick(30);
    expect(readFileSync(file).equals(old)).toBe(false);
    expect(runWithCodeCache(bundle, { dir: cacheDir, writeAfterMs: 0 }).state).toBe("accepted");
    expect(ran().value).toBe(25);
  });

  it("runs from source when the cached data is damaged, and writes a good one", async () => {
    const { cacheDir, bundle, file } = await withWrittenCache("corrupt", 6);
    const b = readFileSync(file);
    // Keep the header (this bundle, this Node), garble V8's data: V8 would load it (it has no
    // checksum of its own), the header's SHA-1 does not match.
    for (let i = b.length - 64; i < b.length; i++) b[i] = b[i]! ^ 0x5a;
    writeFileSync(file, b);
    expect(runWithCodeCache(bundle, { dir: cacheDir, writeAfterMs: 0 }).state).toBe("absent");
    expect(ran().value).toBe(36);
    await tick(30);
    expect(runWithCodeCache(bundle, { dir: cacheDir, writeAfterMs: 0 }).state).toBe("accepted");
    // A truncated file and a foreign one are no caches at all.
    writeFileSync(file, b.subarray(0, 10));
    expect(runWithCodeCache(bundle, { dir: cacheDir, writeAfterMs: 60_000 }).state).toBe("absent");
    writeFileSync(file, "hello");
    expect(runWithCodeCache(bundle, { dir: cacheDir, writeAfterMs: 60_000 }).state).toBe("absent");
    expect(ran().value).toBe(36);
  });

  it("deletes the caches of bundles that are gone when it writes one, and keeps the others", async () => {
    const cacheDir = join(tmp, "shared-cache");
    const gone = writeBundle(join(tmp, "gone-checkout"), 2);
    const kept = writeBundle(join(tmp, "kept-checkout"), 3);
    const a = runWithCodeCache(gone, { dir: cacheDir, writeAfterMs: 0 });
    const b = runWithCodeCache(kept, { dir: cacheDir, writeAfterMs: 0 });
    await tick(30);
    writeFileSync(join(cacheDir, "notes.v8cache"), "not a cache");
    expect(readdirSync(cacheDir).sort()).toHaveLength(3);
    rmSync(join(tmp, "gone-checkout"), { recursive: true });
    const fresh = writeBundle(join(tmp, "new-checkout"), 4);
    const c = runWithCodeCache(fresh, { dir: cacheDir, writeAfterMs: 0 });
    await tick(30);
    const left = readdirSync(cacheDir).sort();
    expect(left).toContain(b.file!.slice(cacheDir.length + 1));
    expect(left).toContain(c.file!.slice(cacheDir.length + 1));
    expect(left).toContain("notes.v8cache");
    expect(left).not.toContain(a.file!.slice(cacheDir.length + 1));
  });

  it("runs normally when the cache directory cannot be created or written", async () => {
    const dir = join(tmp, "readonly");
    const bundle = writeBundle(dir, 8);
    // A regular file where the directory should be: mkdir and the write both fail.
    const blocker = join(dir, "not-a-dir");
    writeFileSync(blocker, "x");
    const r = runWithCodeCache(bundle, { dir: join(blocker, "cache"), writeAfterMs: 0 });
    expect(r.state).toBe("absent");
    expect(ran().value).toBe(64);
    await tick(30);
    expect(readFileSync(blocker, "utf8")).toBe("x");
    expect(readdirSync(dir).sort()).toEqual(["bundle.cjs", "not-a-dir"]);
  });
});

describe("codeCacheDir", () => {
  it("follows TSKVM_CODE_CACHE, then XDG_CACHE_HOME, then ~/.cache", () => {
    expect(codeCacheDir({ TSKVM_CODE_CACHE: "/x/y" })).toBe("/x/y");
    for (const off of ["", "0", "off"]) expect(codeCacheDir({ TSKVM_CODE_CACHE: off })).toBeUndefined();
    expect(codeCacheDir({ XDG_CACHE_HOME: "/c" })).toBe("/c/tskvm");
    expect(codeCacheDir({})).toMatch(/[/\\]\.cache[/\\]tskvm$/);
  });
});

// The built binary on the bundled Linux: the first boot writes the cache, the second uses it. This
// is what fails if the CLI sets a V8 flag that the binary does not set before compiling.
describe("tskvm binary", () => {
  const PKG = resolve(__dirname, "..");
  const GUESTS = resolve(PKG, "../../guests");
  const OUT = join(PKG, "node_modules", ".tskvm-bin-test");

  beforeAll(() => {
    const r = spawnSync("npx", ["tsup", "--out-dir", OUT, "--silent"], { cwd: PKG, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`building the binary failed: ${r.stderr}`);
  }, 120_000);

  /** Boots to the marker (and, with `untilCache`, until the cache is written); resolves to stderr. */
  function bootToMarker(cacheDir: string, untilCache = false): Promise<string> {
    return new Promise((resolvePromise, reject) => {
      const child = spawn(
        process.execPath,
        [
          join(OUT, "tskvm.js"),
          "--kernel",
          join(GUESTS, "bzImage"),
          "--initrd",
          join(GUESTS, "initramfs.cpio"),
        ],
        { env: { ...process.env, TSKVM_CODE_CACHE: cacheDir, TSKVM_CODE_CACHE_DEBUG: "1" } },
      );
      let out = "";
      let err = "";
      const cached = () => existsSync(cacheDir) && readdirSync(cacheDir).some((f) => f.endsWith(".v8cache"));
      const poll = setInterval(() => {
        if (out.includes("TSKVM-BOOT-OK") && (!untilCache || cached())) child.kill("SIGKILL");
      }, 20);
      child.stdout.on("data", (d: Buffer) => {
        out += d.toString("latin1");
      });
      child.stderr.on("data", (d: Buffer) => {
        err += d.toString("latin1");
      });
      child.on("error", reject);
      child.on("close", () => {
        clearInterval(poll);
        if (out.includes("TSKVM-BOOT-OK")) resolvePromise(err);
        else reject(new Error(`no marker; stderr: ${err}`));
      });
    });
  }

  it("boots with the cache it wrote on the previous boot", async () => {
    const cacheDir = join(tmp, "bin-cache");
    const first = await bootToMarker(cacheDir, true);
    expect(first).toMatch(/code cache absent/);
    expect(readdirSync(cacheDir)).toHaveLength(1);
    const second = await bootToMarker(cacheDir);
    expect(second).toMatch(/code cache accepted/);
  }, 120_000);
});
