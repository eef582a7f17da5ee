/**
 * A 128-byte EDID 1.4 base block (VESA E-EDID Release A2) announcing one preferred mode of
 * width x height at 60 Hz, for VIRTIO_GPU_CMD_GET_EDID. Linux validates the header, version
 * and checksum (drm_edid_block_valid) before it uses the modes.
 */
export function makeEdid(width: number, height: number, serial = 0): Uint8Array {
  const e = new Uint8Array(128);
  e.set([0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00], 0);
  // Manufacturer "TSK": three 5-bit letters (A = 1), big-endian.
  const id = ((20 & 31) << 10) | ((19 & 31) << 5) | (11 & 31);
  e[8] = id >>> 8;
  e[9] = id & 0xff;
  e[10] = 0x01; // product code
  e[12] = serial & 0xff;
  e[13] = (serial >>> 8) & 0xff;
  e[14] = (serial >>> 16) & 0xff;
  e[15] = (serial >>> 24) & 0xff;
  e[16] = 1; // week
  e[17] = 2024 - 1990; // year
  e[18] = 1; // EDID 1.4
  e[19] = 4;
  e[20] = 0xa5; // digital input, 8 bits per colour, DisplayPort
  // Physical size in cm at 96 dpi.
  const hmm = Math.round((width / 96) * 25.4);
  const vmm = Math.round((height / 96) * 25.4);
  e[21] = Math.min(255, Math.round(hmm / 10));
  e[22] = Math.min(255, Math.round(vmm / 10));
  e[23] = 120; // gamma 2.2
  e[24] = 0x06; // sRGB default colour space, preferred timing is native
  // sRGB chromaticity coordinates (red, green, blue, white), packed per the standard.
  e.set([0xee, 0x91, 0xa3, 0x54, 0x4c, 0x99, 0x26, 0x0f, 0x50, 0x54], 25);
  for (let i = 38; i < 54; i++) e[i] = 0x01; // no standard timings
  writeDtd(e, 54, Math.min(width, 4095), Math.min(height, 4095), hmm, vmm);
  writeText(e, 72, 0xfc, "tskvm");
  writeText(e, 90, 0x10, ""); // dummy descriptors
  writeText(e, 108, 0x10, "");
  e[126] = 0; // no extension blocks
  let sum = 0;
  for (let i = 0; i < 127; i++) sum += e[i]!;
  e[127] = (256 - (sum & 0xff)) & 0xff;
  return e;
}

/** A detailed timing descriptor with reduced blanking (CVT-RB-like) at 60 Hz. */
function writeDtd(e: Uint8Array, at: number, w: number, h: number, hmm: number, vmm: number): void {
  const hblank = 160;
  const hfront = 48;
  const hsync = 32;
  const vfront = 3;
  const vsync = 5;
  const vblank = Math.max(vfront + vsync + 6, Math.ceil(h * 0.03));
  const clock10k = Math.min(0xffff, Math.ceil(((w + hblank) * (h + vblank) * 60) / 10_000));
  e[at] = clock10k & 0xff;
  e[at + 1] = clock10k >>> 8;
  e[at + 2] = w & 0xff;
  e[at + 3] = hblank & 0xff;
  e[at + 4] = ((w >>> 8) << 4) | (hblank >>> 8);
  e[at + 5] = h & 0xff;
  e[at + 6] = vblank & 0xff;
  e[at + 7] = ((h >>> 8) << 4) | (vblank >>> 8);
  e[at + 8] = hfront & 0xff;
  e[at + 9] = hsync & 0xff;
  e[at + 10] = ((vfront & 0xf) << 4) | (vsync & 0xf);
  e[at + 11] = ((hfront >>> 8) << 6) | ((hsync >>> 8) << 4) | ((vfront >>> 4) << 2) | (vsync >>> 4);
  const hm = Math.min(hmm, 4095);
  const vm = Math.min(vmm, 4095);
  e[at + 12] = hm & 0xff;
  e[at + 13] = vm & 0xff;
  e[at + 14] = ((hm >>> 8) << 4) | (vm >>> 8);
  e[at + 17] = 0x1e; // digital separate sync, +hsync +vsync
}

/** A display descriptor: tag 0xfc (name) with text, or 0x10 (dummy). */
function writeText(e: Uint8Array, at: number, tag: number, text: string): void {
  e[at + 3] = tag;
  if (tag === 0x10) return;
  const bytes = new TextEncoder().encode(text.slice(0, 12));
  for (let i = 0; i < 13; i++)
    e[at + 5 + i] = i < bytes.length ? bytes[i]! : i === bytes.length ? 0x0a : 0x20;
}
