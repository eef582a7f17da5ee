/**
 * A small description language for C structs at their Linux x86-64 offsets, and a typed view over
 * an ArrayBuffer. Offsets follow the SysV x86-64 ABI (natural alignment); union members are
 * placed with `at`. test/uapi.test.ts checks every offset and size against the installed
 * <linux/kvm.h> with gcc.
 */

export type Scalar = "u8" | "u16" | "u32" | "u64" | "s8" | "s16" | "s32" | "s64";
const SIZE: Record<Scalar, number> = { u8: 1, u16: 2, u32: 4, u64: 8, s8: 1, s16: 2, s32: 4, s64: 8 };

/** One scalar field or array of scalars, by its C member path (e.g. `cs.base`, `channels[1].mode`). */
export interface Field {
  offset: number;
  type: Scalar;
  /** Elements (1 for a scalar). */
  count: number;
}

export interface StructLayout {
  /** The C struct name without `struct`. */
  name: string;
  size: number;
  align: number;
  fields: Readonly<Record<string, Field>>;
}

/** A member: a scalar (`["nr", "u32"]`), an array (`["pad", "u8", 6]`), or a nested struct. */
export type Member =
  | [name: string, type: Scalar, count?: number, opts?: { at?: number }]
  | [name: string, type: StructLayout, count?: number, opts?: { at?: number }];

/** Lays out `members` as a C compiler would; `size` pads the struct (for unions with padding). */
export function struct(name: string, members: Member[], size?: number): StructLayout {
  const fields: Record<string, Field> = {};
  let off = 0;
  let align = 1;
  let end = 0;
  for (const [mname, type, count = 1, opts] of members) {
    const isScalar = typeof type === "string";
    const a = isScalar ? SIZE[type] : type.align;
    const sz = isScalar ? SIZE[type] : type.size;
    align = Math.max(align, a);
    let at = opts?.at;
    if (at === undefined) at = Math.ceil(off / a) * a;
    if (isScalar) {
      fields[mname] = { offset: at, type, count };
    } else {
      for (let i = 0; i < count; i++) {
        const prefix = count > 1 || mname.endsWith("[]") ? `${mname.replace("[]", "")}[${i}]` : mname;
        for (const [fname, f] of Object.entries(type.fields)) {
          fields[`${prefix}.${fname}`] = { ...f, offset: at + i * sz + f.offset };
        }
      }
    }
    const mend = at + sz * count;
    end = Math.max(end, mend);
    if (opts?.at === undefined) off = mend;
  }
  const natural = Math.ceil(end / align) * align;
  return { name, size: size ?? natural, align, fields };
}

/** A struct placed in bytes, read and written by member path. 64-bit members are bigint. */
export class StructView {
  readonly bytes: Uint8Array;
  private readonly dv: DataView;
  constructor(
    readonly layout: StructLayout,
    bytes?: Uint8Array,
  ) {
    this.bytes = bytes ?? new Uint8Array(layout.size);
    if (this.bytes.length < layout.size) throw new RangeError(`${layout.name} needs ${layout.size} bytes`);
    this.dv = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
  }

  private field(path: string, index: number): { f: Field; at: number } {
    const f = this.layout.fields[path];
    if (!f) throw new RangeError(`${this.layout.name} has no member ${path}`);
    if (index < 0 || index >= f.count)
      throw new RangeError(`${this.layout.name}.${path}[${index}] out of range`);
    return { f, at: f.offset + index * SIZE[f.type] };
  }

  /** A 8/16/32-bit member as a number. */
  num(path: string, index = 0): number {
    const { f, at } = this.field(path, index);
    const dv = this.dv;
    switch (f.type) {
      case "u8":
        return dv.getUint8(at);
      case "s8":
        return dv.getInt8(at);
      case "u16":
        return dv.getUint16(at, true);
      case "s16":
        return dv.getInt16(at, true);
      case "u32":
        return dv.getUint32(at, true);
      case "s32":
        return dv.getInt32(at, true);
      default:
        throw new TypeError(`${path} is 64-bit: use big()`);
    }
  }

  /** A 64-bit member as a bigint. */
  big(path: string, index = 0): bigint {
    const { f, at } = this.field(path, index);
    if (f.type === "u64") return this.dv.getBigUint64(at, true);
    if (f.type === "s64") return this.dv.getBigInt64(at, true);
    throw new TypeError(`${path} is not 64-bit: use num()`);
  }

  /** Writes a member; numbers for 8-32-bit members, bigint (or number) for 64-bit ones. */
  set(path: string, value: number | bigint, index = 0): void {
    const { f, at } = this.field(path, index);
    const dv = this.dv;
    switch (f.type) {
      case "u8":
      case "s8":
        dv.setUint8(at, Number(value) & 0xff);
        return;
      case "u16":
      case "s16":
        dv.setUint16(at, Number(value) & 0xffff, true);
        return;
      case "u32":
      case "s32":
        dv.setUint32(at, Number(value) >>> 0, true);
        return;
      default:
        dv.setBigUint64(at, BigInt.asUintN(64, BigInt(value)), true);
    }
  }

  /** The bytes of an array member (a view, not a copy). */
  array(path: string): Uint8Array {
    const { f } = this.field(path, 0);
    return this.bytes.subarray(f.offset, f.offset + SIZE[f.type] * f.count);
  }
}
