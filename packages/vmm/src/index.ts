/** The npm name of this package. */
export const PACKAGE_NAME = "@tskvm/vmm";

export * from "./boot/cpu-state.js";
export * from "./boot/linux.js";
export * from "./boot/multiboot.js";
export * from "./layout.js";
export * from "./memory.js";
