// @tskvm/virtio/testing: tools for tests, fuzzers and benchmarks (not for production use).

export { type DriverTransport, MmioDriverTransport, RecordingIrq } from "./driver-transport";
export { type AddOptions, type InitOptions, MockDriver, MockQueue, type UsedBuffer } from "./mock-driver";
export { MockPackedQueue } from "./mock-packed";
export { PciDriverTransport, RecordingMsi } from "./pci-driver-transport";
