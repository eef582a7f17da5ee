// @tskvm/virtio: virtio 1.2 virtqueues, transports and devices. Exports only.

export { ChunkedGuestMemory, type ChunkedGuestMemoryOptions } from "./chunked-memory";
export * from "./constants";
export { type DeviceContext, type DeviceHost, type Metrics, VirtioDevice } from "./device";
export {
  BALLOON_PAGE,
  BalloonCmdId,
  BalloonConfig,
  BalloonFeature,
  type BalloonMemory,
  type BalloonRequestError,
  BalloonStat,
  type BalloonState,
  type BalloonStatus,
  FlatBalloonMemory,
  type FreePageHintState,
  VirtioBalloon,
  type VirtioBalloonOptions,
} from "./devices/balloon";
export {
  BLK_ID_BYTES,
  BlkConfig,
  BlkFeature,
  type BlkRequest,
  BlkStatus,
  BlkType,
  VirtioBlk,
  type VirtioBlkOptions,
} from "./devices/blk";
export {
  type AnyBlockBackend,
  type AsyncBlockBackend,
  type BlockBackend,
  isAsyncBackend,
  MemoryBlockBackend,
  ReadOnlyBlockBackend,
} from "./devices/blk-backend";
export {
  ConsoleConfig,
  ConsoleControl,
  ConsoleFeature,
  type ConsolePortOptions,
  VirtioConsole,
  type VirtioConsoleOptions,
} from "./devices/console";
export {
  type Framebuffer,
  GPU_EVENT_DISPLAY,
  GPU_MAX_SCANOUTS,
  type GpuChangeEvent,
  GpuCmd,
  GpuConfig,
  type GpuCursor,
  GpuFeature,
  GpuFormat,
  type GpuRect,
  GpuResp,
  type GpuState,
  VirtioGpu,
  type VirtioGpuOptions,
} from "./devices/gpu";
export { makeEdid } from "./devices/gpu-edid";
export {
  MAX_FRAME,
  NET_S_ANNOUNCE,
  NET_S_LINK_UP,
  type NetBackend,
  NetConfig,
  NetFeature,
  NetHdr,
  onesComplementSum,
  VirtioNet,
  type VirtioNetOptions,
} from "./devices/net";
export { type CtrlEffect, handleCtrl, NetCtrl, RxFilter } from "./devices/net-ctrl";
export { L2Switch, type L2SwitchOptions, type NetEndpoint, SwitchPort } from "./devices/net-switch";
export { type PcapOptions, PcapWriter } from "./devices/pcap";
export { type EntropySource, RNG_MAX_REQUEST, VirtioRng } from "./devices/rng";
export { andFeatures, type Features, features, hasFeature, isSubset, setFeature } from "./features";
export { type IrqLine, type MsiSink, NO_IRQ, NO_MSI } from "./irq";
export { FlatGuestMemory, type GuestMemory, isSafeRange } from "./memory";
export { ChainReader, ChainWriter, DescriptorChain, type Segment } from "./queue/chain";
export {
  PACKED_DESC_F_AVAIL,
  PACKED_DESC_F_USED,
  PackedQueue,
  type PackedQueueState,
  RingEventFlags,
} from "./queue/packed";
export { type QueueError, SplitQueue, type SplitQueueState } from "./queue/split";
export type { Virtqueue } from "./queue/virtqueue";
export {
  type InterruptSink,
  TransportCore,
  type TransportCoreState,
  type TransportOptions,
  TransportRestoreError,
} from "./transport/core";
export type { MmioTransportState } from "./transport/mmio";
export {
  MMIO_MAGIC,
  MMIO_WINDOW_SIZE,
  MmioReg,
  MmioTransport,
  mmioKernelParam,
  TSKVM_VENDOR_ID,
} from "./transport/mmio";
export type { PciTransportState } from "./transport/pci";
export {
  PciTransport,
  VIRTIO_PCI_DEVICE_BASE,
  VIRTIO_PCI_VENDOR,
} from "./transport/pci";
export {
  BarLayout,
  CommonCfg,
  NOTIFY_MULTIPLIER,
  PciCapId,
  PciCfg,
  PciCommand,
  PciStatus,
  VIRTIO_MSI_NO_VECTOR,
  VirtioPciCap,
} from "./transport/pci-regs";
