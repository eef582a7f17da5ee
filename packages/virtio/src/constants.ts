// Numbers from the virtio 1.2 specification (oasis-tcs/virtio-spec, content.tex), one name each.

/** virtio 1.2 2.1: device status field bits. */
export const Status = {
  /** The guest OS has found the device. */
  ACKNOWLEDGE: 1,
  /** The guest OS knows how to drive the device. */
  DRIVER: 2,
  /** The driver is set up and ready to drive the device. */
  DRIVER_OK: 4,
  /** The driver has acknowledged the features it understands; negotiation is complete. */
  FEATURES_OK: 8,
  /** The device has hit an error it cannot recover from without a reset. */
  DEVICE_NEEDS_RESET: 64,
  /** The driver has given up on the device. */
  FAILED: 128,
} as const;

/** virtio 1.2 6: reserved (transport) feature bit numbers. */
export const Feature = {
  /** Legacy: notify even when the available ring is empty (never offered here). */
  NOTIFY_ON_EMPTY: 24,
  /** Legacy: arbitrary descriptor layout (implied by VERSION_1). */
  ANY_LAYOUT: 27,
  /** 2.7.5.3: indirect descriptor tables. */
  INDIRECT_DESC: 28,
  /** 2.7.7 / 2.7.10: used_event and avail_event notification suppression. */
  EVENT_IDX: 29,
  /** Compliance with this (1.x) version of the specification. */
  VERSION_1: 32,
  /** The device sits behind an IOMMU / platform-specific access restrictions. */
  ACCESS_PLATFORM: 33,
  /** 2.8: packed virtqueue layout. */
  RING_PACKED: 34,
  /** Buffers are used in the order they were made available. */
  IN_ORDER: 35,
  /** Memory accesses need platform ordering (hardware devices). */
  ORDER_PLATFORM: 36,
  /** Single Root I/O virtualization. */
  SR_IOV: 37,
  /** Notifications carry extra data. */
  NOTIFICATION_DATA: 38,
  /** The driver uses the data from queue_notif_config_data. */
  NOTIF_CONFIG_DATA: 39,
  /** 2.6.1: per-queue reset. */
  RING_RESET: 40,
} as const;

/** virtio 1.2 5: device type ids. */
export const DeviceType = {
  NET: 1,
  BLOCK: 2,
  CONSOLE: 3,
  ENTROPY: 4,
  BALLOON: 5,
  GPU: 16,
} as const;

/** virtio 1.2 2.7.5: split-ring descriptor flags. */
export const DescFlag = {
  /** The buffer continues via the next field. */
  NEXT: 1,
  /** The buffer is device write-only (otherwise device read-only). */
  WRITE: 2,
  /** The buffer contains a list of buffer descriptors. */
  INDIRECT: 4,
} as const;

/** virtio 1.2 2.7.6: avail.flags bit: the driver asks not to be interrupted. */
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
/** virtio 1.2 2.7.8: used.flags bit: the device asks not to be notified. */
export const VIRTQ_USED_F_NO_NOTIFY = 1;

/** Interrupt reasons (mmio InterruptStatus, pci ISR). virtio 1.2 4.2.2 / 4.1.4.5. */
export const InterruptReason = {
  /** A buffer was used in at least one of the active virtqueues. */
  USED_BUFFER: 1,
  /** The device configuration has changed. */
  CONFIG_CHANGE: 2,
} as const;

/** The largest split queue size (virtio 1.2 2.7: "Queue Size ... maximum is 32768"). */
export const MAX_QUEUE_SIZE = 32768;
