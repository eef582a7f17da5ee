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
    // `dist/cli.cjs`: the CLI with the @tskvm packages in one CommonJS file, which `dist/tskvm.js`
    // runs with a V8 code cache (src/code-cache.ts). npm dependencies stay external.
    entry: { cli: "src/cli.ts" },
    format: ["cjs"],
    outExtension: () => ({ js: ".cjs" }),
    noExternal: [/^@tskvm\//],
    shims: true,
    sourcemap: true,
    clean: false,
    target: "node20",
  },
]);
