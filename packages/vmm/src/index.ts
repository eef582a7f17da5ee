/** The npm name of this package. */
export const PACKAGE_NAME = "@tskvm/vmm";

export * from "./actions.js";
export * from "./boot/cpu-state.js";
export * from "./boot/linux.js";
export * from "./boot/mptable.js";
export * from "./boot/multiboot.js";
export * from "./boot/payload.js";
export * from "./boot/pirtable.js";
export * from "./config.js";
export * from "./console.js";
export * from "./devices/bus.js";
export * from "./devices/cmos.js";
export * from "./devices/i8042.js";
export * from "./devices/misc.js";
export * from "./devices/pci.js";
export * from "./devices/uart16550.js";
export * from "./guests.js";
export * from "./layout.js";
export * from "./machine.js";
export * from "./memory.js";
export * from "./screenshot.js";
export * from "./snapshot.js";
export * from "./vm.js";
