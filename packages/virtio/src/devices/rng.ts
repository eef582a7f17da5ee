import { DeviceType, Feature } from "../constants";
import { VirtioDevice } from "../device";
import { features } from "../features";

/**
 * Bytes of entropy given per request at most. Firecracker capped virtio-rng at 64 KiB because a
 * guest could otherwise make the host allocate more than the guest provided (#5762);
 * crypto.getRandomValues also refuses more than 65536 bytes per call.
 */
export const RNG_MAX_REQUEST = 65536;

/** Where entropy comes from: crypto.getRandomValues by default (browser and Node). */
export type EntropySource = (dst: Uint8Array) => void;

const defaultSource: EntropySource = (dst) => {
  globalThis.crypto.getRandomValues(dst);
};

/**
 * virtio-rng, the entropy device (virtio 1.2 5.4): one queue of device-writable buffers that
 * the device fills with random bytes.
 */
export class VirtioRng extends VirtioDevice {
  readonly deviceType = DeviceType.ENTROPY;
  readonly queueSizes = [256];
  readonly offered = features(
    Feature.VERSION_1,
    Feature.EVENT_IDX,
    Feature.INDIRECT_DESC,
    Feature.RING_RESET,
  );
  private readonly scratch = new Uint8Array(RNG_MAX_REQUEST);

  constructor(private readonly source: EntropySource = defaultSource) {
    super(0);
  }

  protected onReset(): void {}

  queueNotify(qi: number): void {
    const ctx = this.ctx;
    const q = ctx?.queues[qi];
    if (ctx === undefined || q === undefined) return;
    let done = 0;
    for (let chain = q.pop(); chain !== undefined; chain = q.pop()) {
      // 5.4.6.2: "The device MUST place one or more random bytes into the buffer", as many as it
      // can up to the buffer's length; device-readable parts are ignored.
      const w = chain.writer(ctx.mem);
      const n = Math.min(w.remaining, RNG_MAX_REQUEST);
      const buf = this.scratch.subarray(0, n);
      if (n > 0) this.source(buf);
      const written = w.write(buf);
      if (w.faulted) this.count("badBuffer");
      this.count("bytes", written);
      q.pushUsed(chain, written);
      done++;
    }
    if (done > 0 || q.error !== undefined) this.signal(qi);
  }
}
