// SSE/SSE2/SSE3/SSSE3/SSE4.1/SSE4.2 and MMX: state and operation helpers.

export * from "./dispatch.js";
export * from "./float.js";
export * from "./int.js";
export * from "./lanes.js";
export * from "./shuffle.js";
export * from "./state.js";
export * from "./string.js";
