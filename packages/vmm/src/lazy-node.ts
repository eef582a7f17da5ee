/**
 * Node built-ins the monitor needs only for some configurations, loaded on first use: importing
 * them at start-up costs every run a few milliseconds (node:zlib for a gzip kernel, node:crypto for
 * a net device's MAC or a snapshot's checksum; the bundled kernels are LZ4 and need neither).
 */
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
let zlibModule: typeof import("node:zlib") | undefined;
let cryptoModule: typeof import("node:crypto") | undefined;

export const nodeZlib = (): typeof import("node:zlib") =>
  (zlibModule ??= require("node:zlib") as typeof import("node:zlib"));
export const nodeCrypto = (): typeof import("node:crypto") =>
  (cryptoModule ??= require("node:crypto") as typeof import("node:crypto"));
