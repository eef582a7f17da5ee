// Exports of src/cpu land here.
export {};
