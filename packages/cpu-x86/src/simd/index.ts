// Exports of src/simd land here.
export {};
