import { defineConfig } from "tsup";

export default defineConfig([
  {
    // The library, `dist/cli.js` (the CLI as an ES module) and `dist/tskvm.js` (the `tskvm` binary).
    entry: ["src/index.ts", "src/cli.ts", "src/tskvm.ts"],
    format: ["esm"],
    dts: { entry: "src/index.ts" },
    sourcemap: true,
    clean: true,
    target: "node20",
  },
  {
    // `dist/cli.cjs`: the CLI with the @tskvm packages and commander in one CommonJS file, which
    // `dist/tskvm.js` runs with a V8 code cache (src/code-cache.ts). pngjs (--screenshot only)
    // stays external.
    entry: { cli: "src/cli.ts" },
    format: ["cjs"],
    outExtension: () => ({ js: ".cjs" }),
    noExternal: [/^@tskvm\//, "commander"],
    banner: {
      js: "/*! Includes commander (https://github.com/tj/commander.js), The MIT License, Copyright (c) 2011 TJ Holowaychuk <tj@vision-media.ca> */",
    },
    shims: true,
    sourcemap: true,
    clean: false,
    target: "node20",
  },
]);
