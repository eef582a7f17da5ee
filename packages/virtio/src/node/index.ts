// @tskvm/virtio/node: backends that need Node's fs (kept out of the browser-safe core).
export { FileBlockBackend, type FileBlockBackendOptions } from "./file-backend";
