// Register numbers for virtio-pci modern (virtio 1.2 4.1) and the PCI pieces it uses
// (PCI Local Bus 3.0 6.1 configuration header, 6.8.2 MSI-X capability).

/** PCI configuration header (type 0) offsets. */
export const PciCfg = {
  VENDOR_ID: 0x00,
  DEVICE_ID: 0x02,
  COMMAND: 0x04,
  STATUS: 0x06,
  REVISION: 0x08,
  CLASS_PROG: 0x09,
  CLASS_SUB: 0x0a,
  CLASS_BASE: 0x0b,
  CACHE_LINE: 0x0c,
  LATENCY: 0x0d,
  HEADER_TYPE: 0x0e,
  BAR0: 0x10,
  SUBSYS_VENDOR: 0x2c,
  SUBSYS_ID: 0x2e,
  CAP_PTR: 0x34,
  INT_LINE: 0x3c,
  INT_PIN: 0x3d,
} as const;

/** PCI command register bits. */
export const PciCommand = {
  /** Memory space decoding enabled. */
  MEMORY: 1 << 1,
  /** The function may master the bus (DMA, MSI). */
  BUS_MASTER: 1 << 2,
  /** INTx assertion disabled. */
  INTX_DISABLE: 1 << 10,
} as const;

/** PCI status register bits. */
export const PciStatus = {
  /** An INTx interrupt is pending (read-only). */
  INTERRUPT: 1 << 3,
  /** The capabilities list at CAP_PTR is valid. */
  CAP_LIST: 1 << 4,
} as const;

/** Capability ids. */
export const PciCapId = { VENDOR: 0x09, MSIX: 0x11 } as const;

/** virtio 1.2 4.1.4: virtio_pci_cap cfg_type values. */
export const VirtioPciCap = { COMMON: 1, NOTIFY: 2, ISR: 3, DEVICE: 4, PCI_CFG: 5 } as const;

/** virtio 1.2 4.1.4.3: struct virtio_pci_common_cfg offsets. */
export const CommonCfg = {
  DEVICE_FEATURE_SELECT: 0x00,
  DEVICE_FEATURE: 0x04,
  DRIVER_FEATURE_SELECT: 0x08,
  DRIVER_FEATURE: 0x0c,
  CONFIG_MSIX_VECTOR: 0x10,
  NUM_QUEUES: 0x12,
  DEVICE_STATUS: 0x14,
  CONFIG_GENERATION: 0x15,
  QUEUE_SELECT: 0x16,
  QUEUE_SIZE: 0x18,
  QUEUE_MSIX_VECTOR: 0x1a,
  QUEUE_ENABLE: 0x1c,
  QUEUE_NOTIFY_OFF: 0x1e,
  QUEUE_DESC: 0x20,
  QUEUE_DRIVER: 0x28,
  QUEUE_DEVICE: 0x30,
  QUEUE_NOTIF_CONFIG_DATA: 0x38,
  QUEUE_RESET: 0x3a,
  ADMIN_QUEUE_INDEX: 0x3c,
  ADMIN_QUEUE_NUM: 0x3e,
  SIZE: 0x40,
} as const;

/** virtio 1.2 4.1.4.3: "no vector" for config_msix_vector / queue_msix_vector. */
export const VIRTIO_MSI_NO_VECTOR = 0xffff;

/** Where each structure sits in BAR 0 (one page each, so a guest can map them apart). */
export const BarLayout = {
  COMMON: 0x0000,
  ISR: 0x1000,
  DEVICE: 0x2000,
  NOTIFY: 0x3000,
  MSIX_TABLE: 0x4000,
  MSIX_PBA: 0x5000,
  /** BAR 0 size (a power of two). */
  SIZE: 0x8000,
} as const;

/** notify_off_multiplier: queue q is notified at NOTIFY + 4 * q (4.1.4.4: a power of 2 or 0). */
export const NOTIFY_MULTIPLIER = 4;

/** Capability offsets in configuration space. */
export const CapAt = {
  MSIX: 0x40,
  COMMON: 0x50,
  NOTIFY: 0x60,
  ISR: 0x78,
  DEVICE: 0x88,
  PCI_CFG: 0x98,
} as const;

/** virtio 1.2 4.1.2.1: the PCI class of each device type (what QEMU and Linux expect). */
export function pciClassOf(deviceType: number): number {
  switch (deviceType) {
    case 1:
      return 0x02_00_00; // network controller, Ethernet
    case 2:
      return 0x01_80_00; // mass storage, other
    case 3:
      return 0x07_80_00; // communication, other
    case 16:
      return 0x03_80_00; // display, other
    default:
      return 0xff_00_00; // unassigned class
  }
}
