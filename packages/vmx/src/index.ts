/** The npm name of this package. */
export const PACKAGE_NAME = "@tskvm/vmx";

export * from "./caps";
export * from "./controls";
export * from "./entry";
export * from "./entry-check-cache";
export * from "./entry-checks-controls";
export * from "./entry-checks-guest";
export * from "./entry-checks-host";
export * from "./exit";
export * from "./exit-info";
export * from "./fields";
export * from "./flat64";
export * from "./iface";
export * from "./instructions";
export * from "./intercepts";
export * from "./msr-area";
export * from "./nested";
export * from "./util";
export * from "./vmcs";
