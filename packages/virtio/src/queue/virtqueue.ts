import type { DescriptorChain } from "./chain";
import type { PackedQueueState } from "./packed";
import type { QueueError, SplitQueueState } from "./split";

/**
 * What devices and transports use of a virtqueue, split (2.7) or packed (2.8). The transport
 * programs size and the three area addresses; devices pop chains and push them back used.
 */
export interface Virtqueue {
  readonly maxSize: number;
  size: number;
  ready: boolean;
  /** Descriptor table (split) or descriptor ring (packed). */
  descAddr: number;
  /** Available ring (split) or driver event suppression area (packed). */
  availAddr: number;
  /** Used ring (split) or device event suppression area (packed). */
  usedAddr: number;
  /** Set when the driver broke a ring rule; the queue does nothing more until reset. */
  error: QueueError | undefined;
  /** Negotiated VIRTIO_F_INDIRECT_DESC. */
  indirect: boolean;
  /** Negotiated VIRTIO_F_EVENT_IDX. */
  eventIdx: boolean;
  reset(): void;
  isValid(): boolean;
  /** The next available chain, parsed and validated; undefined when empty or on error. */
  pop(): DescriptorChain | undefined;
  /** Give back a chain just popped (and every chain popped after it). */
  undoPop(chain: DescriptorChain): void;
  /** Return a chain to the driver with len bytes written. False if the ring is unwritable. */
  pushUsed(chain: DescriptorChain, len: number): boolean;
  /** Whether the driver wants an interrupt for what was pushed since the last call. */
  needsNotification(): boolean;
  /** Plain, JSON-able state for snapshots. */
  save(): SplitQueueState | PackedQueueState;
  /** Load a saved state (validated); false and reset if it does not fit this queue. */
  load(s: SplitQueueState | PackedQueueState): boolean;
}
