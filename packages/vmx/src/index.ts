/** The npm name of this package. */
export const PACKAGE_NAME = "@tskvm/vmx";

export * from "./caps";
export * from "./controls";
export * from "./fields";
export * from "./vmcs";
