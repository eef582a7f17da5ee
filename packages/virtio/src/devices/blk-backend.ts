/**
 * Storage behind a virtio-blk device. Synchronous: the device completes each request before
 * returning to the VMM (so reset never leaves I/O in flight). Any exception becomes
 * VIRTIO_BLK_S_IOERR for that request, never a crash.
 */
export interface BlockBackend {
  /** Capacity in bytes (a multiple of 512; a partial last sector is not exposed). */
  readonly size: number;
  /** The device offers VIRTIO_BLK_F_RO and fails every write. */
  readonly readOnly: boolean;
  /** Read dst.length bytes at byte offset (within size). */
  read(offset: number, dst: Uint8Array): void;
  /** Write src at byte offset (within size). */
  write(offset: number, src: Uint8Array): void;
  /** Make every completed write durable (VIRTIO_BLK_T_FLUSH). */
  flush(): void;
  /** Deallocate a range (VIRTIO_BLK_T_DISCARD); contents after are unspecified. Optional. */
  discard?(offset: number, len: number): void;
  /** Zero a range (VIRTIO_BLK_T_WRITE_ZEROES); `unmap` allows deallocating. Optional. */
  writeZeroes?(offset: number, len: number, unmap: boolean): void;
}

/**
 * A disk held in memory (an ArrayBuffer, or a given image).
 *
 * @example
 * ```ts
 * import { MemoryBlockBackend, VirtioBlk } from "@tskvm/virtio";
 * const blk = new VirtioBlk(new MemoryBlockBackend(64 << 20));
 * ```
 */
export class MemoryBlockBackend implements BlockBackend {
  readonly bytes: Uint8Array;
  readonly readOnly = false;
  flushes = 0;

  constructor(sizeOrImage: number | Uint8Array) {
    this.bytes = typeof sizeOrImage === "number" ? new Uint8Array(sizeOrImage) : sizeOrImage;
  }

  get size(): number {
    return this.bytes.length - (this.bytes.length % 512);
  }

  read(offset: number, dst: Uint8Array): void {
    dst.set(this.bytes.subarray(offset, offset + dst.length));
  }

  write(offset: number, src: Uint8Array): void {
    this.bytes.set(src, offset);
  }

  flush(): void {
    this.flushes++;
  }

  discard(offset: number, len: number): void {
    this.bytes.fill(0, offset, offset + len);
  }

  writeZeroes(offset: number, len: number): void {
    this.bytes.fill(0, offset, offset + len);
  }
}

/** A read-only view of another backend: the device offers VIRTIO_BLK_F_RO and refuses writes. */
export class ReadOnlyBlockBackend implements BlockBackend {
  readonly readOnly = true;
  constructor(private readonly inner: BlockBackend) {}
  get size(): number {
    return this.inner.size;
  }
  read(offset: number, dst: Uint8Array): void {
    this.inner.read(offset, dst);
  }
  write(): void {
    throw new Error("read-only backend");
  }
  flush(): void {}
}

/**
 * Storage whose operations finish later (the browser's OPFS or IndexedDB, Node's fs.promises).
 * The device parses and validates at once, runs the operation, and completes the request when
 * the promise settles; a rejection is VIRTIO_BLK_S_IOERR. A completion that arrives after a
 * device or queue reset is dropped without touching guest memory.
 */
export interface AsyncBlockBackend {
  readonly async: true;
  readonly size: number;
  readonly readOnly: boolean;
  read(offset: number, dst: Uint8Array): Promise<void>;
  write(offset: number, src: Uint8Array): Promise<void>;
  flush(): Promise<void>;
  discard?(offset: number, len: number): Promise<void>;
  writeZeroes?(offset: number, len: number, unmap: boolean): Promise<void>;
}

/** Either kind of backend. */
export type AnyBlockBackend = BlockBackend | AsyncBlockBackend;

export function isAsyncBackend(b: AnyBlockBackend): b is AsyncBlockBackend {
  return (b as AsyncBlockBackend).async === true;
}
