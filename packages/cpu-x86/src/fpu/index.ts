// Exports of src/fpu land here.
export {};
