// The public face of @tskvm/cpu-x86: the decoder and formatter, the CPU, and the x87/SSE units.

export * from "./cpu/index.js";
export * from "./decoder/index.js";
export * from "./fpu/index.js";
export * from "./simd/index.js";
