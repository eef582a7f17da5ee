import { closeSync, fstatSync, fsyncSync, openSync, readSync, writeSync } from "node:fs";
import type { BlockBackend } from "../devices/blk-backend";

/** Options for FileBlockBackend. */
export interface FileBlockBackendOptions {
  /** Open read-only; the device offers VIRTIO_BLK_F_RO. */
  readOnly?: boolean;
}

/**
 * A raw disk image file through Node's fs (importable only from `@tskvm/virtio/node`, so the
 * core stays usable in a browser). Writes go to the page cache; FLUSH calls fsync, so a write
 * is durable once a FLUSH after it completed (virtio 1.2 5.2.6: the device "MUST ... commit
 * ... to non-volatile storage" on VIRTIO_BLK_T_FLUSH).
 *
 * @example
 * ```ts
 * import { VirtioBlk } from "@tskvm/virtio";
 * import { FileBlockBackend } from "@tskvm/virtio/node";
 * const disk = new VirtioBlk(new FileBlockBackend("disk.img"));
 * ```
 */
export class FileBlockBackend implements BlockBackend {
  readonly readOnly: boolean;
  readonly size: number;
  private fd: number;

  constructor(path: string, opts: FileBlockBackendOptions = {}) {
    this.readOnly = opts.readOnly === true;
    this.fd = openSync(path, this.readOnly ? "r" : "r+");
    const bytes = fstatSync(this.fd).size;
    this.size = bytes - (bytes % 512);
  }

  read(offset: number, dst: Uint8Array): void {
    let done = 0;
    while (done < dst.length) {
      const n = readSync(this.fd, dst, done, dst.length - done, offset + done);
      if (n <= 0) throw new Error("short read");
      done += n;
    }
  }

  write(offset: number, src: Uint8Array): void {
    if (this.readOnly) throw new Error("read-only backend");
    let done = 0;
    while (done < src.length) {
      done += writeSync(this.fd, src, done, src.length - done, offset + done);
    }
  }

  flush(): void {
    if (!this.readOnly) fsyncSync(this.fd);
  }

  writeZeroes(offset: number, len: number): void {
    const chunk = new Uint8Array(Math.min(len, 1 << 20));
    for (let at = 0; at < len; at += chunk.length) {
      this.write(offset + at, chunk.subarray(0, Math.min(chunk.length, len - at)));
    }
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
