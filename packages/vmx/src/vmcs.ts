/**
 * A VMCS: its 4-KByte region image and the processor's cached copy of the current VMCS.
 *
 * SDM Vol. 3C 25.2 ("Format of the VMCS Region"): bytes 0-3 hold the VMCS revision identifier
 * (bits 30:0) and the shadow-VMCS indicator (bit 31); bytes 4-7 the VMX-abort indicator; the rest
 * is "VMCS data (implementation-specific format)". Our implementation-specific format:
 *
 * | byte offset | content |
 * |---|---|
 * | 0  | revision id (30:0), shadow-VMCS indicator (31) |
 * | 4  | VMX-abort indicator |
 * | 8  | launch state: 0 = clear, 1 = launched (SDM 25.1: "the launch state of a VMCS") |
 * | 12 | reserved, 0 |
 * | 16 + 8*slot | field `slot` of `VMCS_FIELDS` (full-access rows, in table order), little-endian 64 bits |
 *
 * The processor may keep the current VMCS in a cache and only guarantees the region's content after
 * VMCLEAR (SDM 25.11.1); `Vmcs` is that cache, and `loadFrom`/`storeTo` move the whole image.
 * The image is a Uint32Array over little-endian bytes (every platform Node and browsers run on).
 */
import { encHigh, encIndex, encType, encWidth, FieldWidth, VMCS_FIELDS } from "./fields";

/** Size of a VMCS region (reported in IA32_VMX_BASIC bits 44:32). */
export const VMCS_REGION_SIZE = 4096;

const HEADER_WORDS = 4;
const W_REVISION = 0;
const W_ABORT = 1;
const W_LAUNCH = 2;

function compactKey(enc: number): number {
  return (((encWidth(enc) << 2) | encType(enc)) << 9) | encIndex(enc);
}

/** compact key (width, type, index) -> slot; -1 where Appendix B has no field. */
const SLOT = new Int16Array(1 << 13).fill(-1);
let slotCount = 0;
for (const d of VMCS_FIELDS) {
  if (!d.high) SLOT[compactKey(d.enc)] = slotCount++;
}
/** Number of field slots in our layout. */
export const VMCS_SLOT_COUNT = slotCount;
if (16 + 8 * VMCS_SLOT_COUNT > VMCS_REGION_SIZE) throw new Error("VMCS layout exceeds 4 KiB");

/** Slot of an encoding (full or high access) or -1. Reserved encoding bits give -1. */
export function slotOf(enc: number): number {
  if ((enc & 0xffff9000) !== 0) return -1; // bits 31:15 and 12 are reserved (SDM 25.11.2)
  if (encHigh(enc) && encWidth(enc) !== FieldWidth.W64) return -1; // high access is 64-bit only
  return SLOT[compactKey(enc)] ?? -1;
}

/**
 * Encoding (bits 14:0) -> word of the field's low half in `Vmcs.words` (as `slotOf`, a high-access
 * encoding names its field's slot), 0 where there is no field (word 0 is the header, never a
 * field): one table load per access on the entry/exit path.
 */
const WORD = new Int16Array(1 << 15);
for (const d of VMCS_FIELDS) WORD[d.enc] = HEADER_WORDS + 2 * slotOf(d.enc);

const MASK32 = 0xffffffffn;

/** The contents of one VMCS. Values are raw field contents, already truncated to the field width. */
export class Vmcs {
  /** The region image: header words, then two words (low, high) per slot. */
  readonly words: Uint32Array;
  /** The same bytes, for moving the image to and from guest memory. */
  readonly bytes: Uint8Array;
  /** The same words as int32, for comparing them without turning values >= 2^31 into doubles. */
  readonly signedWords: Int32Array;

  constructor() {
    this.words = new Uint32Array(VMCS_REGION_SIZE / 4);
    this.bytes = new Uint8Array(this.words.buffer);
    this.signedWords = new Int32Array(this.words.buffer);
  }

  get revisionId(): number {
    return this.words[W_REVISION]! & 0x7fffffff;
  }
  set revisionId(v: number) {
    this.words[W_REVISION] = (this.words[W_REVISION]! & 0x80000000) | (v & 0x7fffffff);
  }
  /** Bit 31 of the first word: this is a shadow VMCS (SDM 25.10). */
  get shadow(): boolean {
    return (this.words[W_REVISION]! & 0x80000000) !== 0;
  }
  set shadow(v: boolean) {
    this.words[W_REVISION] = (this.words[W_REVISION]! & 0x7fffffff) | (v ? 0x80000000 : 0);
  }
  /** VMX-abort indicator (SDM 28.7): nonzero after a VMX abort. */
  get abortIndicator(): number {
    return this.words[W_ABORT]!;
  }
  set abortIndicator(v: number) {
    this.words[W_ABORT] = v >>> 0;
  }
  get launched(): boolean {
    return this.words[W_LAUNCH] === 1;
  }
  set launched(v: boolean) {
    this.words[W_LAUNCH] = v ? 1 : 0;
  }

  /**
   * The word of a field's low half in `words` (the high half follows). Full-access encodings;
   * throws RangeError for anything else.
   */
  wordOf(enc: number): number {
    const w = (enc & ~0x7fff) === 0 ? WORD[enc]! : 0;
    if (w === 0) throw new RangeError(`no VMCS field 0x${enc.toString(16)}`);
    return w;
  }

  /** Low 32 bits of a field (16- and 32-bit fields: the whole value). Full-access encodings. */
  get32(enc: number): number {
    return this.words[this.wordOf(enc)]!;
  }
  /** Upper 32 bits of a 64-bit or natural-width field. */
  getHi(enc: number): number {
    return this.words[this.wordOf(enc) + 1]!;
  }
  /** Store a field from its 32-bit halves, truncated as `set64` does, without a bigint. */
  setHalves(enc: number, lo: number, hi: number): void {
    const w = this.wordOf(enc);
    const width = encWidth(enc);
    this.words[w] = width === FieldWidth.W16 ? lo & 0xffff : lo;
    this.words[w + 1] = width === FieldWidth.W16 || width === FieldWidth.W32 ? 0 : hi;
  }
  /** Write the low 32 bits and clear the upper half (truncating to the field's width). */
  set32(enc: number, v: number): void {
    const w = this.wordOf(enc);
    this.words[w] = encWidth(enc) === FieldWidth.W16 ? v & 0xffff : v >>> 0;
    this.words[w + 1] = 0;
  }
  /**
   * A 64-bit field as a number, for physical addresses (below 2^52, so exact) on hot paths
   * without a bigint.
   */
  getNum(enc: number): number {
    const w = this.wordOf(enc);
    return this.words[w + 1]! * 4294967296 + this.words[w]!;
  }
  /** The whole field as an unsigned 64-bit value. */
  get64(enc: number): bigint {
    const w = this.wordOf(enc);
    const hi = this.words[w + 1]!;
    const lo = this.words[w]!;
    // Most values fit in 53 bits: one BigInt conversion instead of three bigint operations.
    if (hi < 0x200000) return BigInt(hi * 4294967296 + lo);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }
  /** Store a value, truncated to the field's width. */
  set64(enc: number, v: bigint): void {
    const w = this.wordOf(enc);
    const width = encWidth(enc);
    if (v >= 0n && v <= 0x1fffffffffffffn) {
      // Below 2^53: split as a number, no bigint arithmetic.
      const n = Number(v);
      const lo = n >>> 0;
      this.words[w] = width === FieldWidth.W16 ? lo & 0xffff : lo;
      this.words[w + 1] =
        width === FieldWidth.W16 || width === FieldWidth.W32 ? 0 : Math.floor(n / 4294967296);
      return;
    }
    const lo = Number(v & MASK32);
    this.words[w] = width === FieldWidth.W16 ? lo & 0xffff : lo;
    this.words[w + 1] =
      width === FieldWidth.W16 || width === FieldWidth.W32 ? 0 : Number((v >> 32n) & MASK32);
  }

  /**
   * VMREAD semantics for any valid encoding, including high access (which reads bits 63:32 of a
   * 64-bit field as a 32-bit value, SDM 25.11.2).
   */
  readEncoded(enc: number): bigint {
    if (encHigh(enc)) return BigInt(this.getHi(enc & ~1));
    return this.get64(enc);
  }
  /**
   * VMWRITE semantics: high access writes bits 63:32 only; a value wider than the field is
   * truncated (SDM Vol. 3C 31.3 VMWRITE: "the high bits of the secondary source operand are
   * ignored").
   */
  writeEncoded(enc: number, v: bigint): void {
    if (encHigh(enc)) {
      this.words[this.wordOf(enc & ~1) + 1] = Number(v & MASK32);
      return;
    }
    this.set64(enc, v);
  }

  /** Every field, header included, back to zero. */
  clear(): void {
    this.words.fill(0);
  }
  copyFrom(other: Vmcs): void {
    this.words.set(other.words);
  }
}
