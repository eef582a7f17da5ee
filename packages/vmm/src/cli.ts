#!/usr/bin/env node
// The `tskvm` command. Until the CPU and VMX layers can run a guest, it says so plainly instead
// of pretending to boot; `tskvm run` is the VMM issue's work.
import { PACKAGE_NAME } from "./index.js";

const args = process.argv.slice(2);
if (args.includes("--help") || args.includes("-h")) {
  console.log("usage: tskvm [run] [options]   (boots the bundled guest with no arguments)");
  process.exit(0);
}
console.error(
  `${PACKAGE_NAME}: the VMM cannot boot a guest yet: the CPU, VMX and KVM layers are still being built.`,
);
process.exit(2);
