import { describe, expect, it } from "vitest";
import { DualPic } from "../src/devices/pic.js";

/** Linux arch/x86/kernel/i8259.c init_8259A(auto_eoi), vectors 0x30/0x38 (ISA_IRQ_VECTOR). */
function linuxInit(pic: DualPic, autoEoi = false): void {
  pic.ioWrite(0x21, 0xff);
  pic.ioWrite(0x20, 0x11); // ICW1: edge, cascade, ICW4
  pic.ioWrite(0x21, 0x30); // ICW2
  pic.ioWrite(0x21, 0x04); // ICW3: slave on IR2
  pic.ioWrite(0x21, autoEoi ? 0x03 : 0x01); // ICW4: 8086 (+AEOI)
  pic.ioWrite(0xa0, 0x11);
  pic.ioWrite(0xa1, 0x38);
  pic.ioWrite(0xa1, 0x02); // slave id 2
  pic.ioWrite(0xa1, 0x01);
  pic.ioWrite(0x21, 0x00); // unmask all
  pic.ioWrite(0xa1, 0x00);
}

function pulse(pic: DualPic, irq: number): void {
  pic.setIrq(irq, true);
  pic.setIrq(irq, false);
}

describe("8259A", () => {
  it("Linux probe_8259A: IMR reads back what was written", () => {
    const pic = new DualPic();
    pic.ioWrite(0x21, 0xfb);
    expect(pic.ioRead(0x21)).toBe(0xfb);
  });

  it("ICW1 clears IMR and resets the init sequence; ICW2 sets the vector base (T7-T3)", () => {
    const pic = new DualPic();
    pic.ioWrite(0x21, 0xff);
    pic.ioWrite(0x20, 0x11);
    expect(pic.ioRead(0x21)).toBe(0);
    pic.ioWrite(0x21, 0x37); // low bits ignored in 8086 mode
    pic.ioWrite(0x21, 0x04);
    pic.ioWrite(0x21, 0x01);
    pic.ioWrite(0x21, 0xfe); // now OCW1
    expect(pic.ioRead(0x21)).toBe(0xfe);
    pulse(pic, 0);
    expect(pic.acknowledge()).toBe(0x30);
  });

  it("ICW1 SNGL: no ICW3, the next byte is ICW4", () => {
    const pic = new DualPic();
    pic.ioWrite(0x20, 0x13); // single, IC4
    pic.ioWrite(0x21, 0x20);
    pic.ioWrite(0x21, 0x03); // ICW4 with AEOI
    pic.ioWrite(0x21, 0xaa); // OCW1
    expect(pic.ioRead(0x21)).toBe(0xaa);
    expect(pic.save().master.autoEoi).toBe(1);
  });

  it("edge-triggered: IRR latches a rising edge, INTA moves it to ISR and raises nothing again", () => {
    const outs: boolean[] = [];
    const pic = new DualPic((l) => outs.push(l));
    linuxInit(pic);
    pic.setIrq(1, true);
    expect(pic.output).toBe(true);
    expect(pic.ioRead(0x20) & 2).toBe(2); // OCW3 default reads IRR
    expect(pic.acknowledge()).toBe(0x31);
    expect(pic.output).toBe(false);
    pic.ioWrite(0x20, 0x0b); // OCW3: read ISR
    expect(pic.ioRead(0x20)).toBe(2);
    pic.ioWrite(0x20, 0x20); // non-specific EOI
    pic.setIrq(1, true); // still high: no new edge
    expect(pic.output).toBe(false);
    expect(outs).toEqual([true, false]);
  });

  it("fully nested priority: a higher IR preempts, a lower one waits for EOI", () => {
    const pic = new DualPic();
    linuxInit(pic);
    pulse(pic, 4);
    expect(pic.acknowledge()).toBe(0x34);
    pulse(pic, 5);
    expect(pic.output).toBe(false); // IR5 below in-service IR4
    pulse(pic, 3);
    expect(pic.output).toBe(true);
    expect(pic.acknowledge()).toBe(0x33);
    pic.ioWrite(0x20, 0x20); // EOI ends IR3 (highest in service)
    pic.ioWrite(0x20, 0x20); // then IR4
    expect(pic.acknowledge()).toBe(0x35);
  });

  it("OCW2 specific EOI clears the ISR bit", () => {
    const pic = new DualPic();
    linuxInit(pic);
    pulse(pic, 6);
    pic.acknowledge();
    pic.ioWrite(0x20, 0x0b);
    expect(pic.ioRead(0x20)).toBe(0x40);
    pic.ioWrite(0x20, 0x60 | 6);
    expect(pic.ioRead(0x20)).toBe(0);
  });

  it("cascade: slave IRQ 12 arrives through master IR2; Linux acks slave then master", () => {
    const pic = new DualPic();
    linuxInit(pic);
    pulse(pic, 12);
    expect(pic.output).toBe(true);
    expect(pic.acknowledge()).toBe(0x38 + 4);
    pic.ioWrite(0xa0, 0x0b);
    expect(pic.ioRead(0xa0)).toBe(0x10);
    pic.ioWrite(0x20, 0x0b);
    expect(pic.ioRead(0x20)).toBe(0x04);
    pic.ioWrite(0xa0, 0x60 | 4); // mask_and_ack_8259A: specific EOI on slave
    pic.ioWrite(0x20, 0x60 | 2); // and on the cascade line
    pic.ioWrite(0xa0, 0x0b);
    expect(pic.ioRead(0xa0)).toBe(0);
  });

  it("a slave request pending behind the master's in-service cascade is not lost", () => {
    const pic = new DualPic();
    linuxInit(pic);
    pulse(pic, 9);
    pulse(pic, 8);
    expect(pic.acknowledge()).toBe(0x38); // IRQ8 first (higher priority)
    pic.ioWrite(0xa0, 0x60);
    pic.ioWrite(0x20, 0x62);
    expect(pic.output).toBe(true);
    expect(pic.acknowledge()).toBe(0x39);
  });

  it("spurious: with nothing pending INTA answers IR7 without setting ISR", () => {
    const pic = new DualPic();
    linuxInit(pic);
    pic.setIrq(3, true);
    pic.ioWrite(0x21, 0x08); // masked after it was raised
    expect(pic.acknowledge()).toBe(0x37);
    pic.ioWrite(0x20, 0x0b);
    expect(pic.ioRead(0x20)).toBe(0);
  });

  it("spurious on the slave: master IR2 latched, the slave's level request gone by INTA: IRQ15, master ISR bit 2 set", () => {
    const pic = new DualPic();
    linuxInit(pic);
    pic.ioWrite(0x4d1, 0x02); // IRQ9 level-triggered
    pic.setIrq(9, true);
    expect(pic.output).toBe(true);
    pic.setIrq(9, false); // the device dropped its line; master IRR bit 2 stays latched (edge)
    expect(pic.output).toBe(true);
    expect(pic.acknowledge()).toBe(0x38 + 7);
    pic.ioWrite(0x20, 0x0b);
    expect(pic.ioRead(0x20)).toBe(0x04);
    pic.ioWrite(0xa0, 0x0b);
    expect(pic.ioRead(0xa0)).toBe(0); // no slave ISR bit for a spurious IRQ15
  });

  it("OCW1 masks: a masked line stays in IRR and is delivered when unmasked", () => {
    const pic = new DualPic();
    linuxInit(pic);
    pic.ioWrite(0x21, 0x20);
    pulse(pic, 5);
    expect(pic.output).toBe(false);
    expect(pic.ioRead(0x20) & 0x20).toBe(0x20);
    pic.ioWrite(0x21, 0);
    expect(pic.acknowledge()).toBe(0x35);
  });

  it("ELCR level mode: IRR follows the line and INTA does not clear it", () => {
    const pic = new DualPic();
    linuxInit(pic);
    pic.ioWrite(0x4d1, 0x0e); // IRQ 9, 10, 11 level
    expect(pic.ioRead(0x4d1)).toBe(0x0e);
    pic.ioWrite(0x4d0, 0xff);
    expect(pic.ioRead(0x4d0)).toBe(0xf8); // IRQ 0-2 are edge-only on PIIX
    pic.setIrq(10, true);
    expect(pic.acknowledge()).toBe(0x3a);
    pic.ioWrite(0xa0, 0x62);
    pic.ioWrite(0x20, 0x62);
    expect(pic.output).toBe(true); // still asserted: requests again
    pic.setIrq(10, false);
    pic.ioWrite(0xa0, 0x0a);
    expect(pic.ioRead(0xa0) & 0x04).toBe(0); // slave IRR follows the line
    // Master IR2 latched the slave's edge, so the INTA that follows finds nothing: IRQ15.
    expect(pic.acknowledge()).toBe(0x3f);
  });

  it("ICW4 AEOI: INTA leaves ISR clear; rotate in AEOI makes the served IR lowest", () => {
    const pic = new DualPic();
    linuxInit(pic, true);
    pic.ioWrite(0x20, 0x80); // OCW2: set rotate in AEOI
    pulse(pic, 1);
    expect(pic.acknowledge()).toBe(0x31);
    pic.ioWrite(0x20, 0x0b);
    expect(pic.ioRead(0x20)).toBe(0);
    pulse(pic, 0);
    pulse(pic, 3);
    expect(pic.acknowledge()).toBe(0x33); // IR2 is now highest, so IR3 ranks above IR0
  });

  it("OCW2 set priority and rotate on non-specific EOI", () => {
    const pic = new DualPic();
    linuxInit(pic);
    pic.ioWrite(0x20, 0xc0 | 4); // IR4 lowest, so IR5 highest
    pulse(pic, 1);
    pulse(pic, 6);
    expect(pic.acknowledge()).toBe(0x36);
    pic.ioWrite(0x20, 0xa0); // rotate on non-specific EOI: IR6 lowest, IR7 highest
    expect(pic.save().master.priorityAdd).toBe(7);
    expect(pic.acknowledge()).toBe(0x31);
  });

  it("OCW3 special mask mode lets lower priorities through a masked in-service level", () => {
    const pic = new DualPic();
    linuxInit(pic);
    pulse(pic, 2 + 1);
    expect(pic.acknowledge()).toBe(0x33);
    pulse(pic, 5);
    expect(pic.output).toBe(false);
    pic.ioWrite(0x21, 0x08); // mask the in-service IR3
    pic.ioWrite(0x20, 0x68); // OCW3: ESMM|SMM
    expect(pic.output).toBe(true);
    expect(pic.acknowledge()).toBe(0x35);
  });

  it("OCW3 poll: the next read returns 0x80|level and acts as INTA", () => {
    const pic = new DualPic();
    linuxInit(pic);
    pic.ioWrite(0x20, 0x0c);
    expect(pic.ioRead(0x20)).toBe(0); // nothing requesting: bit 7 clear
    pulse(pic, 6);
    pic.ioWrite(0x20, 0x0c);
    expect(pic.ioRead(0x20)).toBe(0x86);
    pic.ioWrite(0x20, 0x0b);
    expect(pic.ioRead(0x20)).toBe(0x40); // the poll read set the ISR bit, software EOIs it
    expect(pic.output).toBe(false);
  });

  it("save -> restore -> save round trip", () => {
    const pic = new DualPic();
    linuxInit(pic);
    pic.ioWrite(0x4d1, 0x0c);
    pulse(pic, 4);
    pic.acknowledge();
    pulse(pic, 7);
    const s = pic.save();
    const p2 = new DualPic();
    p2.restore(s);
    expect(p2.save()).toEqual(s);
    expect(p2.output).toBe(pic.output);
  });
});
