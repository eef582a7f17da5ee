/**
 * A VM (KVM_CREATE_VM): memory slots, vCPUs, the in-kernel irqchip and PIT, GSI routing, MSI,
 * irqfd/ioeventfd listeners, device state, kvmclock; and the kernel side of I/O and MMIO exits
 * (which port/address an in-kernel device answers, and which go to userspace).
 */

import { KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, TSKVM_MAX_VCPUS } from "./caps.js";
import { DeterministicClock, HostClock, type VmClock } from "./clock.js";
import { CoalescedMmio, type CoalescedMmioZone } from "./coalesced-mmio.js";
import type { IoApicState } from "./devices/ioapic.js";
import { type ClockData, KvmClockVm } from "./devices/kvmclock.js";
import { DualPic, type PicState } from "./devices/pic.js";
import { KVM_PIT_SPEAKER_DUMMY, Pit, type PitState } from "./devices/pit.js";
import { fail } from "./errors.js";
import { type IoeventfdSpec, IoeventfdTable } from "./ioeventfd.js";
import type { IrqRoutingEntry } from "./irq-routing.js";
import { IRQ_SOURCE_IRQFD, IRQ_SOURCE_PIT, IRQ_SOURCE_USERSPACE, Irqchip } from "./irqchip.js";
import type { Kvm } from "./kvm.js";
import { GuestPhysMemory, type UserMemoryRegion } from "./memory.js";
import { Vcpu } from "./vcpu.js";

/** KVM_GET_IRQCHIP / KVM_SET_IRQCHIP argument. */
export type IrqchipState = { chipId: 0 | 1; pic: PicState["master"] } | { chipId: 2; ioapic: IoApicState };

export interface VmOptions {
  /** "host" (default) or "deterministic" (time from retired instructions). */
  clock?: "host" | "deterministic" | VmClock;
  /** Unix-epoch ns at VM creation for kvmclock's wall clock (default: Date.now()). */
  epochNs?: number;
}

/** A handle for an irqfd registration (KVM_IRQFD). */
export interface Irqfd {
  /** The eventfd write: an edge on the GSI, or, with resample, an assert held until EOI. */
  signal(): void;
  /** KVM_IRQFD with KVM_IRQFD_FLAG_DEASSIGN. */
  deassign(): void;
}

export class Vm {
  readonly memory = new GuestPhysMemory();
  readonly clock: VmClock;
  readonly kvmclock: KvmClockVm;
  readonly vcpus: Vcpu[] = [];
  irqchip: Irqchip | null = null;
  pit: Pit | null = null;
  readonly ioeventfds = new IoeventfdTable();
  /** Coalesced MMIO/PIO zones and their ring (coalesced-mmio.ts). */
  readonly coalescedMmio = new CoalescedMmio();
  manualDirtyLogProtect = false;
  private readonly kickListeners: ((vcpuIndex: number) => void)[] = [];
  private readonly irqfds = new Set<Irqfd>();

  constructor(
    readonly kvm: Kvm,
    opts: VmOptions = {},
  ) {
    const c = opts.clock ?? "host";
    this.clock = c === "host" ? new HostClock() : c === "deterministic" ? new DeterministicClock() : c;
    const epoch = opts.epochNs;
    this.kvmclock = new KvmClockVm(
      this.clock,
      epoch === undefined ? undefined : () => epoch + this.clock.nowNs(),
    );
  }

  /** Registers a listener for "vCPU n may have work" (the VMM's kick). */
  onKick(fn: (vcpuIndex: number) => void): void {
    this.kickListeners.push(fn);
  }
  kick(vcpuIndex: number): void {
    for (const f of this.kickListeners) f(vcpuIndex);
  }

  // ---- memory ----

  setUserMemoryRegion(r: UserMemoryRegion): void {
    this.memory.setUserMemoryRegion(r);
  }
  getDirtyLog(slot: number): Uint8Array {
    return this.memory.getDirtyLog(slot, this.manualDirtyLogProtect);
  }
  clearDirtyLog(slot: number, firstPage: number, numPages: number, bitmap: Uint8Array): void {
    this.memory.clearDirtyLog(slot, firstPage, numPages, bitmap);
  }

  /** KVM_ENABLE_CAP on the VM: only MANUAL_DIRTY_LOG_PROTECT2 with the ENABLE bit. */
  enableCap(cap: number, args: readonly number[] = []): void {
    if (cap === KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) {
      const a = args[0] ?? 0;
      if (a & ~1) fail("EINVAL", "KVM_ENABLE_CAP", "UnsupportedFlags");
      this.manualDirtyLogProtect = a === 1;
      return;
    }
    fail("EINVAL", "KVM_ENABLE_CAP", "UnknownCap", `cap ${cap}`);
  }

  /** Guest-physical address of the 3-page real-mode TSS (KVM_SET_TSS_ADDR), or -1. */
  tssAddr = -1;
  /** Guest-physical address of the EPT identity-map page (KVM_SET_IDENTITY_MAP_ADDR). */
  identityMapAddr = 0xfffbc000;

  /**
   * KVM_SET_TSS_ADDR (api.rst 4.36). KVM needs the region only to run real mode without
   * unrestricted guest (vmx_set_tss_addr returns 0 at once with it); our VMX has unrestricted
   * guest, so the address is recorded and nothing else happens. It must fit below 4 GiB.
   */
  setTssAddr(addr: number): void {
    if (!Number.isInteger(addr) || addr < 0 || addr + 3 * 4096 > 2 ** 32)
      fail("EINVAL", "KVM_SET_TSS_ADDR", "BadAddress");
    this.tssAddr = addr;
  }

  /** KVM_SET_IDENTITY_MAP_ADDR (api.rst 4.57): before any vCPU exists (EINVAL after). */
  setIdentityMapAddr(addr: number): void {
    if (this.vcpus.length > 0) fail("EINVAL", "KVM_SET_IDENTITY_MAP_ADDR", "VcpusExist");
    if (!Number.isSafeInteger(addr) || addr < 0 || addr % 4096 !== 0)
      fail("EINVAL", "KVM_SET_IDENTITY_MAP_ADDR", "BadAddress");
    this.identityMapAddr = addr;
  }

  // ---- vCPUs and devices ----

  /** KVM_CREATE_VCPU: `id` is the APIC id; unique, below the max (EINVAL), not reused (EEXIST). */
  createVcpu(id: number): Vcpu {
    const step = "KVM_CREATE_VCPU";
    if (!Number.isInteger(id) || id < 0 || id >= TSKVM_MAX_VCPUS) fail("EINVAL", step, "BadId", `${id}`);
    if (this.vcpus.length >= TSKVM_MAX_VCPUS) fail("EINVAL", step, "TooManyVcpus");
    if (this.vcpus.some((v) => v.id === id)) fail("EEXIST", step, "DuplicateId", `${id}`);
    const v = new Vcpu(this, id, this.vcpus.length);
    v.addCpuMsrs(this.kvm.cpuMsrIndices());
    this.vcpus.push(v);
    return v;
  }

  /** KVM_CREATE_IRQCHIP: once (EEXIST), and before any vCPU (EINVAL), as api.rst 4.24 requires. */
  createIrqchip(): void {
    if (this.irqchip) fail("EEXIST", "KVM_CREATE_IRQCHIP", "AlreadyCreated");
    if (this.vcpus.length > 0) fail("EINVAL", "KVM_CREATE_IRQCHIP", "VcpusExist");
    this.irqchip = new Irqchip(this.clock, { kick: (i) => this.kick(i) });
  }

  /** KVM_CREATE_PIT2: after the irqchip (ENOENT), once (EEXIST). */
  createPit2(flags = 0): void {
    if (this.pit) fail("EEXIST", "KVM_CREATE_PIT2", "AlreadyCreated");
    if (!this.irqchip) fail("ENOENT", "KVM_CREATE_PIT2", "NoIrqchip");
    const chip = this.irqchip;
    this.pit = new Pit(
      this.clock,
      () => {
        chip.setGsi(0, true, IRQ_SOURCE_PIT);
        chip.setGsi(0, false, IRQ_SOURCE_PIT);
      },
      (flags & KVM_PIT_SPEAKER_DUMMY) !== 0,
    );
  }

  private chip(step: string): Irqchip {
    if (!this.irqchip) fail("ENXIO", step, "NoIrqchip");
    return this.irqchip;
  }

  /** KVM_IRQ_LINE(_STATUS): drive a GSI; returns >0 delivered, 0 masked/coalesced, -1 no route. */
  irqLine(gsi: number, level: boolean): number {
    const chip = this.chip("KVM_IRQ_LINE");
    if (!Number.isInteger(gsi) || gsi < 0) fail("EINVAL", "KVM_IRQ_LINE", "BadGsi");
    return chip.setGsi(gsi, level, IRQ_SOURCE_USERSPACE);
  }

  /** KVM_SET_GSI_ROUTING: replaces the table (EINVAL without an irqchip). */
  setGsiRouting(entries: readonly IrqRoutingEntry[]): void {
    if (!this.irqchip) fail("EINVAL", "KVM_SET_GSI_ROUTING", "NoIrqchip");
    this.irqchip.routing.set(entries);
  }

  /**
   * KVM_SIGNAL_MSI: flags may only hold KVM_MSI_VALID_DEVID (the device id matters only with an
   * IOMMU, which x86 KVM ignores here); returns the LAPICs that accepted it, or -1 when none was
   * addressed (the ioctl then fails with EPERM, as real KVM's does).
   */
  signalMsi(msi: { addressLo: number; addressHi: number; data: number; flags?: number }): number {
    if ((msi.flags ?? 0) & ~1) fail("EINVAL", "KVM_SIGNAL_MSI", "BadFlags");
    if (!this.irqchip) fail("EINVAL", "KVM_SIGNAL_MSI", "NoIrqchip");
    return this.irqchip.signalMsi(msi.addressLo >>> 0, msi.addressHi >>> 0, msi.data >>> 0);
  }

  /**
   * KVM_IRQFD: `signal()` injects GSI `gsi` without a userspace round trip. With `resample`
   * (KVM_IRQFD_FLAG_RESAMPLE) the GSI is level: asserted on signal, deasserted when the guest
   * EOIs it, and `resample` is then called so the device can re-assert if still pending.
   */
  irqfd(gsi: number, resample?: () => void): Irqfd {
    const step = "KVM_IRQFD";
    if (!this.irqchip) fail("EINVAL", step, "NoIrqchip");
    if (!Number.isInteger(gsi) || gsi < 0 || gsi >= 4096) fail("EINVAL", step, "BadGsi");
    const chip = this.irqchip;
    let off: (() => void) | undefined;
    if (resample) {
      off = chip.onGsiEoi(gsi, () => {
        chip.setGsi(gsi, false, IRQ_SOURCE_IRQFD);
        resample();
      });
    }
    const fd: Irqfd = {
      signal: () => {
        if (!this.irqfds.has(fd)) return;
        chip.setGsi(gsi, true, IRQ_SOURCE_IRQFD);
        if (!resample) chip.setGsi(gsi, false, IRQ_SOURCE_IRQFD);
      },
      deassign: () => {
        // eventfd.c kvm_irqfd_deassign() succeeds whether or not the pair was assigned.
        if (!this.irqfds.delete(fd)) return;
        off?.();
        if (resample) chip.setGsi(gsi, false, IRQ_SOURCE_IRQFD);
      },
    };
    this.irqfds.add(fd);
    return fd;
  }

  /** KVM_IOEVENTFD assign / deassign. */
  /**
   * KVM_REGISTER_COALESCED_MMIO: writes into the zone are queued in `coalescedMmio.page` instead
   * of exiting (while the ring has room); drain it with `drainCoalesced` before handling any exit.
   */
  registerCoalescedMmio(zone: CoalescedMmioZone): void {
    this.coalescedMmio.register(zone);
  }

  /** KVM_UNREGISTER_COALESCED_MMIO: drops the zones of that kind containing the whole range. */
  unregisterCoalescedMmio(zone: CoalescedMmioZone): void {
    this.coalescedMmio.unregister(zone);
  }

  ioeventfd(spec: IoeventfdSpec, deassign = false): void {
    if (deassign) this.ioeventfds.remove(spec);
    else this.ioeventfds.add(spec);
  }

  getIrqchip(chipId: number): IrqchipState {
    const chip = this.chip("KVM_GET_IRQCHIP");
    const s = chip.pic.save();
    switch (chipId) {
      case 0:
        return { chipId: 0, pic: s.master };
      case 1:
        return { chipId: 1, pic: s.slave };
      case 2:
        return { chipId: 2, ioapic: chip.ioapic.save() };
    }
    fail("EINVAL", "KVM_GET_IRQCHIP", "BadChipId");
  }

  setIrqchip(state: IrqchipState): void {
    const chip = this.chip("KVM_SET_IRQCHIP");
    if (state.chipId === 2) {
      if (!Array.isArray(state.ioapic?.redirtbl) || state.ioapic.redirtbl.length !== 24) {
        fail("EINVAL", "KVM_SET_IRQCHIP", "BadIoapicState");
      }
      chip.ioapic.restore(state.ioapic);
      return;
    }
    if (state.chipId !== 0 && state.chipId !== 1) fail("EINVAL", "KVM_SET_IRQCHIP", "BadChipId");
    const s = chip.pic.save();
    if (state.chipId === 0) s.master = { ...state.pic };
    else s.slave = { ...state.pic };
    chip.pic.restore(s);
  }

  getPit2(): PitState {
    if (!this.pit) fail("ENXIO", "KVM_GET_PIT2", "NoPit");
    return this.pit.save();
  }
  setPit2(s: PitState): void {
    if (!this.pit) fail("ENXIO", "KVM_SET_PIT2", "NoPit");
    try {
      this.pit.restore(s);
    } catch {
      fail("EINVAL", "KVM_SET_PIT2", "BadState");
    }
  }

  getClock(): ClockData {
    return this.kvmclock.get();
  }
  setClock(d: ClockData): void {
    if (!this.kvmclock.set(d)) fail("EINVAL", "KVM_SET_CLOCK", "BadFlags");
    for (const v of this.vcpus) v.kvmclock.update(this.memory);
  }

  // ---- the kernel side of exits ----

  /**
   * A guest IN: the value if an in-kernel device owns the port, else undefined (KVM_EXIT_IO).
   */
  ioIn(port: number, size: number): number | undefined {
    const chip = this.irqchip;
    // KVM picdev_read(): a non-byte read of a PIC port is answered in the kernel with 0.
    if (chip && DualPic.handlesPort(port)) return size === 1 ? chip.pic.ioRead(port) : 0;
    // KVM pit_ioport_read()/speaker_ioport_read(): the byte, zero-extended, at any width.
    if (this.pit && Pit.handlesPort(port, this.pit.speakerDummy)) return this.pit.ioRead(port);
    return undefined;
  }

  /** A guest OUT: true if the kernel completed it (ioeventfd, in-kernel device, coalesced zone). */
  ioOut(port: number, size: number, value: number): boolean {
    if (this.ioeventfds.write(true, port, size, value, 0)) return true;
    const chip = this.irqchip;
    if (chip && DualPic.handlesPort(port)) {
      if (size === 1) chip.pic.ioWrite(port, value); // KVM picdev_write(): wider writes are dropped
      return true;
    }
    if (this.pit && Pit.handlesPort(port, this.pit.speakerDummy)) {
      this.pit.ioWrite(port, value & 0xff); // the low byte, as pit_ioport_write() takes it
      return true;
    }
    // After the in-kernel devices and ioeventfds, as a zone registered over them never sees
    // their ports (KVM's bus hands a write to the first device that takes it).
    return this.coalescedMmio.write(true, port, size, value, 0);
  }

  /** A guest MMIO read outside RAM: LAPIC (of that vCPU), IOAPIC, else undefined (KVM_EXIT_MMIO). */
  mmioRead(vcpuIndex: number, gpa: number, size: number): number | undefined {
    const chip = this.irqchip;
    if (!chip) return undefined;
    const l = chip.lapicAt(gpa, vcpuIndex);
    if (l) return l.mmioRead(gpa - l.mmioBase, size);
    if (chip.inIoapic(gpa)) return chip.ioapic.mmioRead(gpa - chip.ioapic.baseAddress, size);
    return undefined;
  }

  /** A guest MMIO write outside RAM: true if the kernel completed it. */
  mmioWrite(vcpuIndex: number, gpa: number, size: number, lo: number, hi = 0): boolean {
    if (this.ioeventfds.write(false, gpa, size, lo, hi)) return true;
    const chip = this.irqchip;
    if (chip) {
      const l = chip.lapicAt(gpa, vcpuIndex);
      if (l) {
        l.mmioWrite(gpa - l.mmioBase, size, lo);
        return true;
      }
      if (chip.inIoapic(gpa)) {
        chip.ioapic.mmioWrite(gpa - chip.ioapic.baseAddress, size, lo);
        return true;
      }
    }
    return this.coalescedMmio.write(false, gpa, size, lo, hi);
  }

  /** Earliest in-kernel timer deadline (LAPIC timers, PIT), in VM ns. */
  nextDeadlineNs(): number {
    return Math.min(
      this.irqchip?.nextDeadlineNs() ?? Number.POSITIVE_INFINITY,
      this.pit?.nextDeadlineNs() ?? Number.POSITIVE_INFINITY,
    );
  }

  /** Services every timer that expired by now. */
  tick(): void {
    const now = this.clock.nowNs();
    this.pit?.tick(now);
    this.irqchip?.tick(now);
  }
}
