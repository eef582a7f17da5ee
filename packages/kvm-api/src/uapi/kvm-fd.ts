/**
 * `ioctl(fd, request, arg)` over the object API, for porting C VMMs line by line: file
 * descriptors for /dev/kvm, VMs, vCPUs and eventfds; arguments are the uapi structs' bytes.
 * Returns what the raw syscall returns: a value >= 0, or -errno (no global errno).
 * Pointers inside structs (`userspace_addr`, `dirty_bitmap`) are addresses handed out by
 * {@link KvmFds.map}, which stands in for mmap.
 */

import { KVM_COALESCED_MMIO_PAGE_OFFSET } from "../coalesced-mmio.js";
import type { PicChipState } from "../devices/pic.js";
import { Errno, KvmError } from "../errors.js";
import type { KvmExit } from "../exits.js";
import type { IrqRoutingEntry } from "../irq-routing.js";
import { KVM_VCPU_MMAP_SIZE, Kvm } from "../kvm.js";
import type { Vcpu } from "../vcpu.js";
import type { IrqchipState, Irqfd, Vm } from "../vm.js";
import * as C from "./codec.js";
import * as I from "./ioctl.js";
import { StructView } from "./layout.js";
import * as T from "./structs.js";

/** Where the coalesced ring sits in a vCPU mapping (KVM_COALESCED_MMIO_PAGE_OFFSET pages in). */
const RING_AT = KVM_COALESCED_MMIO_PAGE_OFFSET * 4096;

type FdObject =
  | { kind: "kvm" }
  | { kind: "vm"; vm: Vm }
  | { kind: "vcpu"; vcpu: Vcpu; run: Uint8Array; ringFirst: number }
  | { kind: "eventfd"; count: bigint; onWrite: (() => void) | undefined };

const PIC_KEYS: [keyof PicChipState, string][] = [
  ["lastIrr", "last_irr"],
  ["irr", "irr"],
  ["imr", "imr"],
  ["isr", "isr"],
  ["priorityAdd", "priority_add"],
  ["irqBase", "irq_base"],
  ["readRegSelect", "read_reg_select"],
  ["poll", "poll"],
  ["specialMask", "special_mask"],
  ["initState", "init_state"],
  ["autoEoi", "auto_eoi"],
  ["rotateOnAutoEoi", "rotate_on_auto_eoi"],
  ["specialFullyNestedMode", "special_fully_nested_mode"],
  ["init4", "init4"],
  ["elcr", "elcr"],
  ["elcrMask", "elcr_mask"],
];
const PIO_DATA_OFFSET = 4096;

export class KvmFds {
  private readonly fds = new Map<number, FdObject>();
  private nextFd = 3;
  private readonly userMem: { addr: bigint; buf: ArrayBuffer | SharedArrayBuffer }[] = [];
  private nextAddr = 0x7f0000000000n;
  private readonly irqfds = new Map<string, Irqfd>();

  constructor(readonly kvm: Kvm = new Kvm()) {}

  private add(o: FdObject): number {
    const fd = this.nextFd++;
    this.fds.set(fd, o);
    return fd;
  }

  /** open("/dev/kvm"). */
  openKvm(): number {
    return this.add({ kind: "kvm" });
  }
  /** eventfd(0, 0): `write` signals it, `read` returns and clears the count. */
  eventfd(): number {
    return this.add({ kind: "eventfd", count: 0n, onWrite: undefined });
  }
  eventfdWrite(fd: number, n = 1n): void {
    const o = this.fds.get(fd);
    if (o?.kind !== "eventfd") throw new KvmError("EBADF", "write", "NotEventfd");
    o.count += n;
    o.onWrite?.();
  }
  eventfdRead(fd: number): bigint {
    const o = this.fds.get(fd);
    if (o?.kind !== "eventfd") throw new KvmError("EBADF", "read", "NotEventfd");
    const c = o.count;
    o.count = 0n;
    return c;
  }
  /** Makes `buf` addressable as userspace memory (what mmap would return). */
  map(buf: ArrayBuffer | SharedArrayBuffer): bigint {
    const addr = this.nextAddr;
    this.userMem.push({ addr, buf });
    this.nextAddr += (BigInt(buf.byteLength) + 0x200000n) & ~0xfffn;
    return addr;
  }
  private resolve(
    addr: bigint,
    len: number,
  ): { buf: ArrayBuffer | SharedArrayBuffer; offset: number } | undefined {
    for (const m of this.userMem) {
      if (addr >= m.addr && addr + BigInt(len) <= m.addr + BigInt(m.buf.byteLength)) {
        return { buf: m.buf, offset: Number(addr - m.addr) };
      }
    }
    return undefined;
  }
  /** mmap(vcpu_fd): the kvm_run page, the PIO data page, the coalesced-MMIO ring page. */
  mmapRun(fd: number): Uint8Array {
    const o = this.fds.get(fd);
    if (o?.kind !== "vcpu") throw new KvmError("EBADF", "mmap", "NotVcpu");
    return o.run;
  }
  close(fd: number): number {
    return this.fds.delete(fd) ? 0 : -Errno.EBADF;
  }

  /** ioctl(2). `arg` is the struct's bytes, or an integer for the by-value ioctls. */
  ioctl(fd: number, request: number, arg: Uint8Array | number = 0): number {
    const o = this.fds.get(fd);
    if (!o) return -Errno.EBADF;
    try {
      const bytes = typeof arg === "number" ? new Uint8Array(0) : arg;
      const num = typeof arg === "number" ? arg : 0;
      // A struct argument must be there and big enough, or copy_from_user() faults.
      if (I._IOC_SIZE(request) > bytes.length) return -Errno.EFAULT;
      switch (o.kind) {
        case "kvm":
          return this.kvmIoctl(request, bytes, num);
        case "vm":
          return this.vmIoctl(o.vm, request, bytes, num);
        case "vcpu":
          return this.vcpuIoctl(o.vcpu, o.run, request, bytes, num);
        default:
          return -Errno.ENOTTY;
      }
    } catch (e) {
      if (e instanceof KvmError) return -e.errno;
      throw e;
    }
  }

  private kvmIoctl(req: number, b: Uint8Array, num: number): number {
    switch (req) {
      case I.KVM_GET_API_VERSION:
        return this.kvm.getApiVersion();
      case I.KVM_CREATE_VM:
        return this.add({ kind: "vm", vm: this.kvm.createVm({ type: num }) });
      case I.KVM_CHECK_EXTENSION:
        return this.kvm.checkExtension(num);
      case I.KVM_GET_VCPU_MMAP_SIZE:
        return KVM_VCPU_MMAP_SIZE;
      case I.KVM_GET_SUPPORTED_CPUID: {
        const max = new StructView(T.kvm_cpuid2, b).num("nent");
        const t = this.kvm.getSupportedCpuid(Math.min(max, Math.floor((b.length - 8) / 40)));
        C.encodeCpuid2(t, b);
        return 0;
      }
      case I.KVM_GET_MSR_INDEX_LIST: {
        const v = new StructView(T.kvm_msr_list, b);
        const list = this.kvm.getMsrIndexList(Math.min(v.num("nmsrs"), Math.floor((b.length - 4) / 4)));
        v.set("nmsrs", list.length);
        const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
        list.forEach((m, i) => {
          dv.setUint32(4 + i * 4, m, true);
        });
        return 0;
      }
    }
    return -Errno.EINVAL; // kvm_dev_ioctl: unknown requests are EINVAL
  }

  private vmIoctl(vm: Vm, req: number, b: Uint8Array, num: number): number {
    switch (req) {
      case I.KVM_CREATE_VCPU: {
        const vcpu = vm.createVcpu(num);
        return this.add({ kind: "vcpu", vcpu, run: new Uint8Array(KVM_VCPU_MMAP_SIZE), ringFirst: 0 });
      }
      case I.KVM_SET_USER_MEMORY_REGION: {
        const v = new StructView(T.kvm_userspace_memory_region, b);
        const size = Number(v.big("memory_size"));
        const m = this.resolve(v.big("userspace_addr"), size);
        if (!m && size !== 0) return -Errno.EINVAL; // access_ok() fails
        vm.setUserMemoryRegion({
          slot: v.num("slot"),
          flags: v.num("flags"),
          guestPhysAddr: Number(v.big("guest_phys_addr")),
          memorySize: size,
          memory: m?.buf ?? new ArrayBuffer(0),
          memoryOffset: m?.offset ?? 0,
        });
        return 0;
      }
      case I.KVM_CREATE_IRQCHIP:
        vm.createIrqchip();
        return 0;
      case I.KVM_SET_TSS_ADDR:
        vm.setTssAddr(num);
        return 0;
      case I.KVM_SET_IDENTITY_MAP_ADDR: {
        if (b.length < 8) return -Errno.EFAULT;
        vm.setIdentityMapAddr(Number(new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true)));
        return 0;
      }
      case I.KVM_CREATE_PIT2:
        vm.createPit2(new StructView(T.kvm_pit_config, b).num("flags"));
        return 0;
      case I.KVM_IRQ_LINE:
      case I.KVM_IRQ_LINE_STATUS: {
        const v = new StructView(T.kvm_irq_level, b);
        const status = vm.irqLine(v.num("irq"), v.num("level") !== 0);
        if (req === I.KVM_IRQ_LINE_STATUS) v.set("status", status);
        return 0;
      }
      case I.KVM_SIGNAL_MSI: {
        const v = new StructView(T.kvm_msi, b);
        const r = vm.signalMsi({
          addressLo: v.num("address_lo"),
          addressHi: v.num("address_hi"),
          data: v.num("data"),
          flags: v.num("flags"),
        });
        return r < 0 ? -Errno.EPERM : r; // kvm_send_userspace_msi() returns -1 itself
      }
      case I.KVM_SET_GSI_ROUTING: {
        const n = new StructView(T.kvm_irq_routing, b).num("nr");
        if (b.length < 8 + n * 48) return -Errno.EFAULT;
        const entries: IrqRoutingEntry[] = [];
        for (let i = 0; i < n; i++) {
          const e = new StructView(T.kvm_irq_routing_entry, b.subarray(8 + i * 48));
          const base = { gsi: e.num("gsi"), flags: e.num("flags") };
          const type = e.num("type");
          if (type === 1)
            entries.push({ ...base, type, irqchip: e.num("u.irqchip.irqchip"), pin: e.num("u.irqchip.pin") });
          else if (type === 2) {
            entries.push({
              ...base,
              type,
              addressLo: e.num("u.msi.address_lo"),
              addressHi: e.num("u.msi.address_hi"),
              data: e.num("u.msi.data"),
            });
          } else return -Errno.EINVAL;
        }
        vm.setGsiRouting(entries);
        return 0;
      }
      case I.KVM_IRQFD:
        return this.irqfd(vm, new StructView(T.kvm_irqfd, b));
      case I.KVM_REGISTER_COALESCED_MMIO:
      case I.KVM_UNREGISTER_COALESCED_MMIO: {
        const v = new StructView(T.kvm_coalesced_mmio_zone, b);
        const pio = v.num("pio");
        // kvm_vm_ioctl_register_coalesced_mmio(): the union's pad/pio is 0 or 1.
        if (pio !== 0 && pio !== 1) return -Errno.EINVAL;
        const addr = v.big("addr");
        if (addr > BigInt(Number.MAX_SAFE_INTEGER)) return -Errno.EINVAL;
        const zone = { addr: Number(addr), size: v.num("size"), pio: pio === 1 };
        if (req === I.KVM_REGISTER_COALESCED_MMIO) vm.registerCoalescedMmio(zone);
        else vm.unregisterCoalescedMmio(zone);
        return 0;
      }
      case I.KVM_IOEVENTFD: {
        const v = new StructView(T.kvm_ioeventfd, b);
        const flags = v.num("flags");
        const efd = this.fds.get(v.num("fd"));
        if (efd?.kind !== "eventfd") return -Errno.EBADF;
        const notify = () => {
          efd.count += 1n;
          efd.onWrite?.();
        };
        const spec = {
          addr: Number(v.big("addr")),
          len: v.num("len"),
          pio: (flags & 2) !== 0,
          datamatch: flags & 1 ? v.big("datamatch") : undefined,
          notify,
        };
        if (flags & 4) {
          // Deassign matches by registration, not by callback identity: find the listener by fd.
          const key = this.evKey(spec, v.num("fd"));
          const orig = this.ioevNotify.get(key);
          if (!orig) return -Errno.ENOENT;
          vm.ioeventfd({ ...spec, notify: orig }, true);
          this.ioevNotify.delete(key);
        } else {
          vm.ioeventfd(spec);
          this.ioevNotify.set(this.evKey(spec, v.num("fd")), notify);
        }
        return 0;
      }
      case I.KVM_GET_IRQCHIP:
      case I.KVM_SET_IRQCHIP:
        return this.irqchip(vm, req, new StructView(T.kvm_irqchip, b));
      case I.KVM_GET_PIT2:
        C.encodePit(vm.getPit2(), new StructView(T.kvm_pit_state2, b));
        return 0;
      case I.KVM_SET_PIT2:
        vm.setPit2(C.decodePit(new StructView(T.kvm_pit_state2, b)));
        return 0;
      case I.KVM_GET_CLOCK:
        C.encodeClock(vm.getClock(), new StructView(T.kvm_clock_data, b));
        return 0;
      case I.KVM_SET_CLOCK:
        vm.setClock(C.decodeClock(new StructView(T.kvm_clock_data, b)));
        return 0;
      case I.KVM_GET_DIRTY_LOG: {
        const v = new StructView(T.kvm_dirty_log, b);
        const log = vm.getDirtyLog(v.num("slot"));
        const m = this.resolve(v.big("dirty_bitmap"), log.length);
        if (!m) return -Errno.EFAULT;
        new Uint8Array(m.buf, m.offset, log.length).set(log);
        return 0;
      }
      case I.KVM_CLEAR_DIRTY_LOG: {
        const v = new StructView(T.kvm_clear_dirty_log, b);
        const n = v.num("num_pages");
        const m = this.resolve(v.big("dirty_bitmap"), Math.ceil(n / 8));
        if (!m) return -Errno.EFAULT;
        vm.clearDirtyLog(
          v.num("slot"),
          Number(v.big("first_page")),
          n,
          new Uint8Array(m.buf, m.offset, Math.ceil(n / 8)),
        );
        return 0;
      }
      case I.KVM_ENABLE_CAP: {
        const v = new StructView(T.kvm_enable_cap, b);
        if (v.num("flags")) return -Errno.EINVAL;
        vm.enableCap(v.num("cap"), [Number(v.big("args", 0))]);
        return 0;
      }
    }
    return -Errno.ENOTTY;
  }

  private readonly ioevNotify = new Map<string, () => void>();
  private evKey(
    s: { addr: number; len: number; pio: boolean; datamatch?: bigint | undefined },
    fd: number,
  ): string {
    return `${s.pio}:${s.addr}:${s.len}:${s.datamatch ?? "*"}:${fd}`;
  }

  private irqfd(vm: Vm, v: StructView): number {
    const fd = v.num("fd");
    const gsi = v.num("gsi");
    const flags = v.num("flags");
    const key = `${fd}:${gsi}`;
    if (flags & 1) {
      // kvm_irqfd_deassign() returns 0 whether or not (fd, gsi) was assigned.
      this.irqfds.get(key)?.deassign();
      this.irqfds.delete(key);
      return 0;
    }
    const efd = this.fds.get(fd);
    if (efd?.kind !== "eventfd") return -Errno.EBADF;
    if (this.irqfds.has(key)) return -Errno.EBUSY;
    let resample: (() => void) | undefined;
    if (flags & 2) {
      const rfd = this.fds.get(v.num("resamplefd"));
      if (rfd?.kind !== "eventfd") return -Errno.EBADF;
      resample = () => {
        rfd.count += 1n;
        rfd.onWrite?.();
      };
    }
    const h = vm.irqfd(gsi, resample);
    efd.onWrite = () => {
      efd.count = 0n;
      h.signal();
    };
    this.irqfds.set(key, h);
    return 0;
  }

  private irqchip(vm: Vm, req: number, v: StructView): number {
    const chipId = v.num("chip_id");
    if (req === I.KVM_GET_IRQCHIP) {
      const s = vm.getIrqchip(chipId);
      if (s.chipId === 2) {
        const io = s.ioapic;
        v.set("chip.ioapic.base_address", io.baseAddress);
        v.set("chip.ioapic.ioregsel", io.ioregsel);
        v.set("chip.ioapic.id", io.id << 24);
        v.set("chip.ioapic.irr", io.irr);
        io.redirtbl.forEach((e, i) => {
          v.set("chip.ioapic.redirtbl", (BigInt(e.hi) << 32n) | BigInt(e.lo), i);
        });
      } else {
        for (const [k, f] of PIC_KEYS) v.set(`chip.pic.${f}`, s.pic[k]);
      }
      return 0;
    }
    let state: IrqchipState;
    if (chipId === 2) {
      state = {
        chipId: 2,
        ioapic: {
          baseAddress: Number(v.big("chip.ioapic.base_address")),
          ioregsel: v.num("chip.ioapic.ioregsel"),
          id: v.num("chip.ioapic.id") >>> 24,
          irr: v.num("chip.ioapic.irr"),
          redirtbl: Array.from({ length: 24 }, (_, i) => {
            const x = v.big("chip.ioapic.redirtbl", i);
            return { lo: Number(x & 0xffffffffn), hi: Number(x >> 32n) };
          }),
        },
      };
    } else if (chipId === 0 || chipId === 1) {
      const pic = { singleMode: 0, icw3: 0 } as PicChipState;
      for (const [k, f] of PIC_KEYS) pic[k] = v.num(`chip.pic.${f}`);
      state = { chipId, pic };
    } else {
      return -Errno.EINVAL;
    }
    vm.setIrqchip(state);
    return 0;
  }

  /**
   * The coalesced ring is one page per VM, which KVM maps into every vCPU's mmap at page
   * KVM_COALESCED_MMIO_PAGE_OFFSET; here each vCPU mapping holds a copy. Userspace writes only
   * `first` (as it drains): before KVM_RUN, a copy whose `first` moved since it was written is
   * taken as userspace's.
   */
  private pullRingFirst(vm: Vm): void {
    for (const o of this.fds.values()) {
      if (o.kind !== "vcpu" || o.vcpu.vm !== vm) continue;
      const first = new DataView(o.run.buffer, o.run.byteOffset + RING_AT, 4).getUint32(0, true);
      if (first !== o.ringFirst) new DataView(vm.coalescedMmio.page.buffer).setUint32(0, first, true);
    }
  }

  /** After KVM_RUN: every vCPU mapping of the VM gets the ring as the kernel left it. */
  private mirrorRing(vm: Vm): void {
    const page = vm.coalescedMmio.page;
    const first = new DataView(page.buffer).getUint32(0, true);
    for (const o of this.fds.values()) {
      if (o.kind !== "vcpu" || o.vcpu.vm !== vm) continue;
      o.run.set(page, RING_AT);
      o.ringFirst = first;
    }
  }

  private vcpuIoctl(vcpu: Vcpu, run: Uint8Array, req: number, b: Uint8Array, num: number): number {
    switch (req) {
      case I.KVM_RUN: {
        const rv = new StructView(T.kvm_run, run);
        vcpu.runFields.requestInterruptWindow = rv.num("request_interrupt_window") !== 0;
        vcpu.runFields.immediateExit = rv.num("immediate_exit") !== 0;
        // Read back as the guest's CR8 without an in-kernel LAPIC (Vcpu.run); a u64 beyond 2^53
        // stays > 15, so it still fails as reserved bits.
        vcpu.runFields.cr8 = Number(rv.big("cr8"));
        const ring = vcpu.vm.coalescedMmio;
        if (ring.used) this.pullRingFirst(vcpu.vm);
        let exit: KvmExit;
        try {
          exit = vcpu.run();
        } finally {
          // post_kvm_run_save() runs on the error paths too.
          writeStatus(rv, vcpu);
          if (ring.used) this.mirrorRing(vcpu.vm);
        }
        writeExit(rv, run, exit);
        return exit.kind === "intr" ? -Errno.EINTR : 0;
      }
      case I.KVM_GET_REGS:
        C.encodeRegs(vcpu.getRegs(), new StructView(T.kvm_regs, b));
        return 0;
      case I.KVM_SET_REGS:
        vcpu.setRegs(C.decodeRegs(new StructView(T.kvm_regs, b)));
        return 0;
      case I.KVM_GET_SREGS:
        C.encodeSregs(vcpu.getSregs(), new StructView(T.kvm_sregs, b));
        return 0;
      case I.KVM_SET_SREGS:
        vcpu.setSregs(C.decodeSregs(new StructView(T.kvm_sregs, b)));
        return 0;
      case I.KVM_GET_FPU:
        C.encodeFpu(vcpu.getFpu(), new StructView(T.kvm_fpu, b));
        return 0;
      case I.KVM_SET_FPU:
        vcpu.setFpu(C.decodeFpu(new StructView(T.kvm_fpu, b)));
        return 0;
      case I.KVM_GET_LAPIC:
        b.set(vcpu.getLapic());
        return 0;
      case I.KVM_SET_LAPIC:
        vcpu.setLapic(b.subarray(0, 1024));
        return 0;
      case I.KVM_SET_CPUID2: {
        const nent = new StructView(T.kvm_cpuid2, b).num("nent");
        if (nent > 256) return -Errno.E2BIG; // KVM_MAX_CPUID_ENTRIES
        if (b.length < 8 + nent * 40) return -Errno.EFAULT;
        vcpu.setCpuid2(C.decodeCpuid2(b));
        return 0;
      }
      case I.KVM_GET_CPUID2: {
        const t = vcpu.getCpuid2();
        if (new StructView(T.kvm_cpuid2, b).num("nent") < t.length) return -Errno.E2BIG;
        C.encodeCpuid2(t, b);
        return 0;
      }
      case I.KVM_GET_MSRS: {
        const bad = msrsArgError(b);
        if (bad) return bad;
        const entries = C.decodeMsrs(b);
        const n = vcpu.getMsrs(entries);
        for (let i = 0; i < n; i++) {
          new StructView(T.kvm_msr_entry, b.subarray(8 + i * 16)).set("data", entries[i]!.data);
        }
        return n;
      }
      case I.KVM_SET_MSRS: {
        const bad = msrsArgError(b);
        if (bad) return bad;
        return vcpu.setMsrs(C.decodeMsrs(b));
      }
      case I.KVM_GET_MP_STATE:
        new StructView(T.kvm_mp_state, b).set("mp_state", vcpu.getMpState());
        return 0;
      case I.KVM_SET_MP_STATE:
        vcpu.setMpState(new StructView(T.kvm_mp_state, b).num("mp_state"));
        return 0;
      case I.KVM_GET_VCPU_EVENTS:
        C.encodeEvents(vcpu.getVcpuEvents(), new StructView(T.kvm_vcpu_events, b));
        return 0;
      case I.KVM_SET_VCPU_EVENTS:
        vcpu.setVcpuEvents(C.decodeEvents(new StructView(T.kvm_vcpu_events, b)));
        return 0;
      case I.KVM_SET_GUEST_DEBUG: {
        const v = new StructView(T.kvm_guest_debug, b);
        vcpu.setGuestDebug({
          control: v.num("control"),
          debugreg: Array.from({ length: 8 }, (_, i) => v.big("arch.debugreg", i)),
        });
        return 0;
      }
      case I.KVM_TRANSLATE: {
        const v = new StructView(T.kvm_translation, b);
        const t = vcpu.translate(v.big("linear_address"));
        v.set("physical_address", t.physicalAddress);
        v.set("valid", t.valid ? 1 : 0);
        v.set("writeable", t.writeable ? 1 : 0);
        v.set("usermode", t.usermode ? 1 : 0);
        return 0;
      }
      case I.KVM_GET_DEBUGREGS:
        C.encodeDebugRegs(vcpu.getDebugRegs(), new StructView(T.kvm_debugregs, b));
        return 0;
      case I.KVM_SET_DEBUGREGS:
        vcpu.setDebugRegs(C.decodeDebugRegs(new StructView(T.kvm_debugregs, b)));
        return 0;
      case I.KVM_GET_XSAVE:
        b.set(vcpu.getXsave());
        return 0;
      case I.KVM_SET_XSAVE:
        vcpu.setXsave(b.subarray(0, 4096));
        return 0;
      case I.KVM_GET_XCRS: {
        const v = new StructView(T.kvm_xcrs, b);
        const x = vcpu.getXcrs();
        v.set("nr_xcrs", x.length);
        x.forEach((e, i) => {
          v.set(`xcrs[${i}].xcr`, e.xcr);
          v.set(`xcrs[${i}].value`, e.value);
        });
        return 0;
      }
      case I.KVM_SET_XCRS: {
        const v = new StructView(T.kvm_xcrs, b);
        const n = v.num("nr_xcrs");
        if (n > 16 || v.num("flags")) return -Errno.EINVAL;
        const x = Array.from({ length: n }, (_, i) => ({
          xcr: v.num(`xcrs[${i}].xcr`),
          value: v.big(`xcrs[${i}].value`),
        }));
        vcpu.setXcrs(x);
        return 0;
      }
      case I.KVM_NMI:
        vcpu.nmi();
        return 0;
      case I.KVM_INTERRUPT:
        vcpu.interrupt(new StructView(T.kvm_interrupt, b).num("irq"));
        return 0;
      case I.KVM_GET_TSC_KHZ:
        return vcpu.getTscKhz();
      case I.KVM_SET_TSC_KHZ:
        vcpu.setTscKhz(num);
        return 0;
      case I.KVM_KVMCLOCK_CTRL:
        vcpu.kvmclockCtrl();
        return 0;
    }
    return -Errno.ENOTTY;
  }
}

/** x86.c msr_io(): at most MAX_IO_MSRS (256) entries (E2BIG), all inside the buffer (EFAULT). */
function msrsArgError(b: Uint8Array): number {
  const n = new StructView(T.kvm_msrs, b).num("nmsrs");
  if (n >= 256) return -Errno.E2BIG;
  if (b.length < 8 + n * 16) return -Errno.EFAULT;
  return 0;
}

/** kvm_run's status fields, as x86.c post_kvm_run_save() leaves them on every return. */
function writeStatus(rv: StructView, vcpu: Vcpu): void {
  rv.set("ready_for_interrupt_injection", vcpu.runFields.readyForInterruptInjection ? 1 : 0);
  rv.set("if_flag", vcpu.runFields.ifFlag ? 1 : 0);
  rv.set("cr8", vcpu.runFields.cr8);
  rv.set("apic_base", vcpu.runFields.apicBase);
}

/** Fills the kvm_run page from an exit (api.rst 5, "The kvm_run structure"). */
function writeExit(rv: StructView, run: Uint8Array, exit: KvmExit): void {
  rv.set("exit_reason", exit.reason);
  switch (exit.kind) {
    case "io":
      rv.set("io.direction", exit.direction);
      rv.set("io.size", exit.size);
      rv.set("io.port", exit.port);
      rv.set("io.count", exit.count);
      rv.set("io.data_offset", PIO_DATA_OFFSET);
      run.set(exit.data.subarray(0, exit.size * exit.count), PIO_DATA_OFFSET);
      break;
    case "mmio":
      rv.set("mmio.phys_addr", exit.physAddr);
      rv.array("mmio.data").set(exit.data.subarray(0, 8));
      rv.set("mmio.len", exit.len);
      rv.set("mmio.is_write", exit.isWrite ? 1 : 0);
      break;
    case "unknown":
      rv.set("hw.hardware_exit_reason", exit.hardwareExitReason);
      break;
    case "fail-entry":
      rv.set("fail_entry.hardware_entry_failure_reason", exit.hardwareEntryFailureReason);
      rv.set("fail_entry.cpu", exit.cpu);
      break;
    case "internal-error":
      rv.set("internal.suberror", exit.suberror);
      rv.set("internal.ndata", Math.min(exit.data.length, 16));
      exit.data.slice(0, 16).forEach((d, i) => {
        rv.set("internal.data", d, i);
      });
      break;
    case "system-event":
      rv.set("system_event.type", exit.type);
      rv.set("system_event.ndata", Math.min(exit.data.length, 16));
      exit.data.slice(0, 16).forEach((d, i) => {
        rv.set("system_event.data", d, i);
      });
      break;
    case "debug":
      rv.set("debug.arch.exception", exit.exception);
      rv.set("debug.arch.pc", exit.pc);
      rv.set("debug.arch.dr6", exit.dr6);
      rv.set("debug.arch.dr7", exit.dr7);
      break;
    default:
      break;
  }
}
