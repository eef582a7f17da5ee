/** The tests use the same doubles the package exports as `@tskvm/vmx/testing`. */
export * from "../src/testing";
