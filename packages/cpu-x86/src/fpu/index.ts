// x87 FPU: soft-float engine for 80-bit extended precision, state, instruction semantics, images.
export * from "./arith.js";
export * from "./convert.js";
export * from "./dispatch.js";
export * from "./host.js";
export * from "./image.js";
export * from "./softfloat.js";
export * from "./transcend.js";
export * from "./x87.js";
export * from "./x87ops.js";
