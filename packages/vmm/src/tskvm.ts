#!/usr/bin/env node
/**
 * The `tskvm` binary: runs the CLI bundle (`cli.cjs` beside this file: `src/cli.ts` with the
 * packages below it) with a V8 code cache (code-cache.ts). `TSKVM_CODE_CACHE` names the cache
 * directory or turns the cache off (empty, `0` or `off`); `TSKVM_CODE_CACHE_DEBUG=1` prints what
 * became of the cache on stderr.
 */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { codeCacheDir, runWithCodeCache } from "./code-cache.js";
import { youngGenerationFullSizeAtOnce } from "./heap.js";

/** A boot has reached most of the code it runs after this long (host ms); then the cache is taken. */
const WRITE_AFTER_MS = 1000;

const bundle = join(dirname(fileURLToPath(import.meta.url)), "cli.cjs");
if (!existsSync(bundle)) {
  process.stderr.write(`tskvm: ${bundle} is missing; build the package (npx tsup)\n`);
  process.exit(70);
}
// V8 accepts a code cache only under the flags it was made with, and the CLI sets one (heap.ts):
// set it before the bundle is compiled, so that every run compiles under the same flags.
youngGenerationFullSizeAtOnce();
const dir = codeCacheDir();
const { state, file } = runWithCodeCache(bundle, { dir, writeAfterMs: WRITE_AFTER_MS });
if (process.env.TSKVM_CODE_CACHE_DEBUG === "1")
  process.stderr.write(`tskvm: code cache ${state}${file ? ` (${file})` : ""}\n`);
