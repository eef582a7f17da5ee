/** The npm name of this package. */
export const PACKAGE_NAME = "@tskvm/cpu-x86";
