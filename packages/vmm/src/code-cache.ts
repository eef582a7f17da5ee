/**
 * Runs a CommonJS bundle with a V8 code cache, as Node 22's `module.enableCompileCache()` and
 * browsers do for scripts; Node 20 offers it for `vm.Script` only.
 *
 * The `tskvm` command is one bundle (`dist/cli.cjs`, ~1.3 MB with the packages below it). Without a
 * cache, every start parses all of it, and a boot then compiles to bytecode each of the thousands of
 * functions it reaches for the first time. A cache taken from a process that has booted for a while
 * holds the bytecode of those functions too: V8 deserialises them instead (~35 ms of a ~1.1 s boot,
 * and running one CommonJS bundle instead of ES modules ~50 ms more: BENCHMARKS.md). It holds no
 * optimised code; V8 still optimises as it runs. The cache is code: a cache directory that others
 * can write to lets them run code as the user who starts `tskvm`.
 *
 * One cache file per bundle path. Its header names the bundle's size and modification time and
 * Node's version, and holds a SHA-1 of V8's data (V8 checks its version, its flags and the source's
 * length, not the data). A file whose header does not match, that V8 rejects or that cannot be read
 * is ignored and replaced. The file is written once, by a run that went on for `writeAfterMs`
 * without an accepted cache, atomically (a temporary file, then rename), and then the files of
 * bundles that no longer exist are deleted. Any failure to read or write the cache leaves the run
 * itself alone.
 */

import { createHash } from "node:crypto";
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { homedir } from "node:os";
import { basename, dirname, join } from "node:path";
import { Script } from "node:vm";

/**
 * Starts every cache file; then a 4-byte little-endian header length, the header (the key, a
 * newline, the SHA-1 of V8's data) and V8's data.
 */
const MAGIC = "TSKVMCC1";

export interface CodeCacheOptions {
  /** Where cache files live; `undefined` runs the bundle without a cache. */
  dir: string | undefined;
  /** Host ms a run goes on before it writes a cache, so the bytecode of a boot's functions is in it. */
  writeAfterMs: number;
}

/**
 * What became of the cache: none asked for, V8 used it, V8 refused it (another V8 or other flags), or
 * none usable was there (missing, made for another build or Node, damaged). After "rejected" and
 * "absent" the run writes a new one.
 */
export type CacheState = "off" | "accepted" | "rejected" | "absent";

export interface CacheResult {
  state: CacheState;
  /** The cache file, unless the cache is off. */
  file: string | undefined;
}

/**
 * The cache directory: `$TSKVM_CODE_CACHE` if set (empty, `0` or `off` turn the cache off), else
 * `$XDG_CACHE_HOME/tskvm`, else `~/.cache/tskvm`.
 */
export function codeCacheDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const v = env.TSKVM_CODE_CACHE;
  if (v !== undefined) return v === "" || v === "0" || v === "off" ? undefined : v;
  const base = env.XDG_CACHE_HOME || join(homedir(), ".cache");
  return join(base, "tskvm");
}

/** FNV-1a over a string's UTF-16 units, as 8 hex digits: names the cache file of a bundle path. */
function fnv1a(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16).padStart(8, "0");
}

/** SHA-1 of V8's data, kept in the header: V8 itself does not checksum a code cache it loads. */
const digest = (data: Uint8Array): string => createHash("sha1").update(data).digest("hex");

/**
 * A cache file's header (the key line and the digest line) and where V8's data starts, from its
 * first `n` bytes; undefined when they do not hold a whole header of ours.
 */
function parseHeader(b: Buffer, n: number): { header: string; dataAt: number } | undefined {
  const m = MAGIC.length;
  if (n < m + 4 || b.toString("latin1", 0, m) !== MAGIC) return undefined;
  const len = b.readUInt32LE(m);
  if (m + 4 + len > n) return undefined;
  return { header: b.toString("utf8", m + 4, m + 4 + len), dataAt: m + 4 + len };
}

/** The V8 data of a cache file made for `key`, intact; undefined for anything else. */
function readCache(file: string, key: string): Buffer | undefined {
  let b: Buffer;
  try {
    b = readFileSync(file);
  } catch {
    return undefined;
  }
  const h = parseHeader(b, b.length);
  if (h === undefined) return undefined;
  const data = b.subarray(h.dataAt);
  return h.header === `${key}\n${digest(data)}` ? data : undefined;
}

function writeCache(file: string, key: string, data: Buffer): void {
  const header = Buffer.from(`${key}\n${digest(data)}`, "utf8");
  const len = Buffer.alloc(4);
  len.writeUInt32LE(header.length);
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(tmp, Buffer.concat([Buffer.from(MAGIC, "latin1"), len, header, data]));
    renameSync(tmp, file);
  } catch {
    // A read-only or full cache directory: the next run compiles from source again.
    try {
      unlinkSync(tmp);
    } catch {}
    return;
  }
  removeOrphans(dirname(file));
}

/**
 * Deletes the cache files of bundles that no longer exist (a removed checkout or temporary clone),
 * which would otherwise stay in the directory for good. Runs only when a cache is written.
 */
function removeOrphans(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.endsWith(".v8cache")) continue;
    const f = join(dir, name);
    try {
      const head = Buffer.alloc(4096);
      const fd = openSync(f, "r");
      let n: number;
      try {
        n = readSync(fd, head, 0, head.length, 0);
      } finally {
        closeSync(fd);
      }
      const h = parseHeader(head, n);
      if (h === undefined) continue;
      const bundle: unknown = (JSON.parse(h.header.split("\n")[0]!) as unknown[])[0];
      if (typeof bundle === "string" && !existsSync(bundle)) unlinkSync(f);
    } catch {
      // Unreadable, not ours, or gone meanwhile: left alone.
    }
  }
}

/**
 * Loads and runs the CommonJS file `bundle` as `require` would, with its code cache from
 * `options.dir`; returns what became of the cache. The bundle's exceptions propagate. V8 accepts a
 * cache only under the V8 flags it was made with: a bundle that sets flags must have them set before.
 */
export function runWithCodeCache(bundle: string, options: CodeCacheOptions): CacheResult {
  const source = readFileSync(bundle, "utf8");
  const st = statSync(bundle);
  const key = JSON.stringify([bundle, st.size, st.mtimeMs, process.version, process.arch]);
  const file =
    options.dir === undefined ? undefined : join(options.dir, `${basename(bundle)}-${fnv1a(bundle)}.v8cache`);
  const cached = file === undefined ? undefined : readCache(file, key);
  // The CommonJS wrapper, on the bundle's first line so that line numbers stay its own; a `#!`
  // line becomes a comment, as Node's loader treats it.
  const body = source.startsWith("#!") ? `//${source}` : source;
  const wrapped = `(function (exports, require, module, __filename, __dirname) {${body}\n})`;
  const script = new Script(wrapped, { filename: bundle, cachedData: cached });
  const state: CacheState =
    file === undefined
      ? "off"
      : cached === undefined
        ? "absent"
        : script.cachedDataRejected
          ? "rejected"
          : "accepted";
  if (file !== undefined && state !== "accepted") {
    let written = false;
    const write = () => {
      if (written) return;
      written = true;
      writeCache(file, key, script.createCachedData());
    };
    const started = performance.now();
    setTimeout(write, options.writeAfterMs).unref();
    // A run that ends (power-off) after the delay but before the timer got its turn.
    process.once("exit", () => {
      if (performance.now() - started >= options.writeAfterMs) write();
    });
  }
  const fn = script.runInThisContext() as (
    exports: unknown,
    require: NodeJS.Require,
    module: { exports: unknown },
    filename: string,
    dirname: string,
  ) => void;
  const module = { exports: {} };
  fn.call(module.exports, module.exports, createRequire(bundle), module, bundle, dirname(bundle));
  return { state, file };
}
