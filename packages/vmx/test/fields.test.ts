import { describe, expect, it } from "vitest";
import {
  encHigh,
  encIndex,
  encType,
  encWidth,
  F,
  FieldType,
  FieldWidth,
  fieldDef,
  VMCS_FIELDS,
} from "../src/fields";
import { slotOf, VMCS_SLOT_COUNT, Vmcs } from "../src/vmcs";

/** The SDM Appendix B section each name prefix lives in: width and type by where it is listed. */
function expectedTypeOf(name: string): FieldType {
  if (name.startsWith("GUEST_PHYSICAL_ADDRESS") || name.startsWith("GUEST_LINEAR_ADDRESS"))
    return FieldType.ExitInfo;
  if (name.startsWith("GUEST_") || name === "VMCS_LINK_POINTER" || name === "VMX_PREEMPTION_TIMER_VALUE")
    return FieldType.Guest;
  if (name.startsWith("HOST_")) return FieldType.Host;
  if (
    /^(VM_INSTRUCTION_ERROR|VM_EXIT_REASON|VM_EXIT_INTR_|IDT_VECTORING_|VM_EXIT_INSTRUCTION_LEN|VMX_INSTRUCTION_INFO|EXIT_QUALIFICATION|IO_R)/.test(
      name,
    )
  )
    return FieldType.ExitInfo;
  return FieldType.Control;
}

describe("SDM Vol. 3D Appendix B: VMCS field encodings", () => {
  it("every entry has the encoding bit layout: width 14:13, type 11:10, index 9:1, access 0", () => {
    for (const d of VMCS_FIELDS) {
      expect(d.enc & 0xffff9000, d.name).toBe(0); // bits 31:15 and 12 reserved
      expect(encWidth(d.enc), d.name).toBe(d.width);
      expect(encType(d.enc), d.name).toBe(d.type);
      expect(encIndex(d.enc), d.name).toBe(d.index);
      expect(encHigh(d.enc), d.name).toBe(d.high);
      expect(d.enc, d.name).toBe((d.width << 13) | (d.type << 10) | (d.index << 1) | (d.high ? 1 : 0));
      if (d.high) expect(d.width, d.name).toBe(FieldWidth.W64);
      expect(d.readOnly, d.name).toBe(d.type === FieldType.ExitInfo);
    }
  });

  it("each field's type matches the Appendix B section it belongs to", () => {
    for (const d of VMCS_FIELDS) expect(d.type, d.name).toBe(expectedTypeOf(d.name.replace(/_HIGH$/, "")));
  });

  it("every 64-bit field has a high-access entry and no other width has one", () => {
    for (const d of VMCS_FIELDS.filter((x) => !x.high)) {
      const hi = fieldDef(d.enc | 1);
      if (d.width === FieldWidth.W64) expect(hi?.name).toBe(`${d.name}_HIGH`);
      else expect(hi).toBeUndefined();
    }
  });

  it("encodings are unique", () => {
    expect(new Set(VMCS_FIELDS.map((d) => d.enc)).size).toBe(VMCS_FIELDS.length);
  });

  it("spot checks against the SDM tables", () => {
    expect(F.GUEST_RIP).toBe(0x681e);
    expect(F.VM_EXIT_REASON).toBe(0x4402);
    expect(F.EPT_POINTER).toBe(0x201a);
    expect(F.VMCS_LINK_POINTER).toBe(0x2800);
    expect(F.HOST_RIP).toBe(0x6c16);
    expect(F.VMX_PREEMPTION_TIMER_VALUE).toBe(0x482e);
    expect(fieldDef(0x482c)).toBeUndefined(); // Appendix B skips index 0x16 of 32-bit guest state
  });
});

describe("VMCS storage", () => {
  it("all fields fit the 4-KByte region after the header", () => {
    expect(16 + 8 * VMCS_SLOT_COUNT).toBeLessThanOrEqual(4096);
    const slots = new Set(VMCS_FIELDS.map((d) => slotOf(d.enc)));
    expect(slots.has(-1)).toBe(false);
    expect(slots.size).toBe(VMCS_SLOT_COUNT);
  });

  it("reserved encoding bits and high access to non-64-bit fields name no field", () => {
    expect(slotOf(F.GUEST_RIP | 0x8000)).toBe(-1);
    expect(slotOf(F.GUEST_RIP | 0x1000)).toBe(-1);
    expect(slotOf(F.GUEST_RIP | 1)).toBe(-1);
    expect(slotOf(F.GUEST_ES_SELECTOR | 1)).toBe(-1);
  });

  it("values are truncated to the field width; high access reads and writes bits 63:32", () => {
    const v = new Vmcs();
    v.writeEncoded(F.GUEST_CS_SELECTOR, 0x12345678n);
    expect(v.readEncoded(F.GUEST_CS_SELECTOR)).toBe(0x5678n);
    v.writeEncoded(F.GUEST_CS_LIMIT, 0x1_ffff_ffffn);
    expect(v.readEncoded(F.GUEST_CS_LIMIT)).toBe(0xffff_ffffn);
    v.writeEncoded(F.TSC_OFFSET, 0x1122334455667788n);
    expect(v.readEncoded(F.TSC_OFFSET | 1)).toBe(0x11223344n);
    v.writeEncoded(F.TSC_OFFSET | 1, 0xaabbccddn);
    expect(v.readEncoded(F.TSC_OFFSET)).toBe(0xaabbccdd55667788n);
    v.writeEncoded(F.GUEST_RIP, 0xffffffff81000123n);
    expect(v.get64(F.GUEST_RIP)).toBe(0xffffffff81000123n);
  });

  it("header: revision id, shadow indicator, abort indicator and launch state live in the region image", () => {
    const v = new Vmcs();
    v.revisionId = 0x1234;
    v.shadow = true;
    v.abortIndicator = 3;
    v.launched = true;
    const dv = new DataView(v.bytes.buffer);
    expect(dv.getUint32(0, true)).toBe(0x80001234);
    expect(dv.getUint32(4, true)).toBe(3);
    expect(dv.getUint32(8, true)).toBe(1);
    v.shadow = false;
    expect(v.revisionId).toBe(0x1234);
    expect(dv.getUint32(0, true)).toBe(0x1234);
  });
});

describe("VMCS storage round trip (property)", () => {
  it("set64 then get64 returns the value truncated to the field width", async () => {
    const fc = (await import("fast-check")).default;
    const fields = VMCS_FIELDS.filter((d) => !d.high);
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: fields.length - 1 }),
        fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        (i, value) => {
          const d = fields[i]!;
          const v = new Vmcs();
          v.set64(d.enc, value);
          const mask =
            d.width === FieldWidth.W16
              ? 0xffffn
              : d.width === FieldWidth.W32
                ? 0xffffffffn
                : (1n << 64n) - 1n;
          expect(v.get64(d.enc)).toBe(value & mask);
          expect(v.get32(d.enc)).toBe(Number(value & mask & 0xffffffffn));
          if (d.width === FieldWidth.W64 || d.width === FieldWidth.Natural)
            expect(v.getHi(d.enc)).toBe(Number((value >> 32n) & 0xffffffffn));
        },
      ),
      { numRuns: 2000 },
    );
  });
});
