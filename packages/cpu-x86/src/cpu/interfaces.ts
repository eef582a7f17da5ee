/**
 * The interfaces the CPU declares and other layers satisfy structurally (ARCHITECTURE.md: "Layers meet
 * through narrow interfaces declared by the package that needs them"). Nothing here imports another
 * package.
 */

/** A 4 KiB window of guest RAM: `u8[offset .. offset + 4095]` is the page. Filled by `ramPage`. */
export interface RamView {
  u8: Uint8Array;
  offset: number;
}

/**
 * Guest-physical memory. Addresses are plain numbers (< 2^52). RAM is handed out as typed-array views so
 * loads and stores that hit the CPU's TLB never leave the CPU; everything else is MMIO.
 */
export interface PhysicalMemory {
  /**
   * Points `out` at the RAM holding the 4 KiB page with guest-physical page number `pfn` (gpa / 4096).
   * Returns false when the page is not RAM (then accesses go to `mmioRead` / `mmioWrite`).
   */
  ramPage(pfn: number, out: RamView): boolean;
  /** An MMIO read of 1, 2 or 4 bytes (the CPU splits 8-byte and larger accesses into 4-byte ones). */
  mmioRead(gpa: number, size: 1 | 2 | 4): number;
  /** An MMIO write of 1, 2 or 4 bytes; `value` holds the low `size` bytes. */
  mmioWrite(gpa: number, size: 1 | 2 | 4, value: number): void;
}

/** Access bits for `Translator.translate`. */
export const Access = {
  WRITE: 1 << 0,
  /** The access is made at CPL 3 (a user-mode access, SDM Vol. 3 4.6). */
  USER: 1 << 1,
  FETCH: 1 << 2,
  /** An implicit supervisor-mode access (GDT/IDT/TSS reads) even at CPL 3. */
  IMPLICIT_SUPERVISOR: 1 << 3,
  /** RFLAGS.AC at the time of the access (for SMAP). */
  AC: 1 << 4,
} as const;

/** `TranslateResult.fault` values. */
export const TranslateFault = {
  NONE: 0,
  /** A page fault: the CPU raises #PF with `errorCode`, CR2 = the linear address. */
  PAGE_FAULT: 14,
  /**
   * The translator stopped the access for its owner (e.g. an EPT violation or misconfiguration that
   * causes a VM exit). The CPU abandons the instruction (RIP unchanged) and `run` returns
   * `RunExit.TRANSLATION`.
   */
  EXIT: -1,
} as const;

/** Result of one translation; a reusable out-object. */
export interface TranslateResult {
  /** Guest-physical address of the accessed byte. */
  paddr: number;
  /** Effective R/W, U/S and XD over all levels of the walk (SDM Vol. 3 4.6). */
  writable: boolean;
  user: boolean;
  nx: boolean;
  global: boolean;
  /** Size of the mapping in bytes (4096, 2 MiB, 4 MiB, 1 GiB). */
  pageSize: number;
  fault: number;
  errorCode: number;
}

/** The paging registers a translator reads (a `Cpu` satisfies this). */
export interface PagingRegs {
  readonly cr0: number;
  readonly cr3Lo: number;
  readonly cr3Hi: number;
  readonly cr4: number;
  readonly efer: number;
  /** PKRU (protection keys for user pages, read when CR4.PKE = 1); absent means 0. */
  readonly pkru?: number;
}

/**
 * Linear -> physical translation. Called only on a TLB miss. Must set A (and, for a write access, D)
 * bits as the SDM says; the CPU grants write access from a TLB entry only after a write translation.
 */
export interface Translator {
  translate(linLo: number, linHi: number, access: number, out: TranslateResult): boolean;
}

/** Port I/O (SDM Vol. 1 ch. 19). Sizes 1, 2, 4. */
export interface PortIo {
  in(port: number, size: 1 | 2 | 4): number;
  out(port: number, size: 1 | 2 | 4, value: number): void;
}

/** What an intercept hook is shown (SDM Vol. 3 ch. 26 "VM exits", instruction and event causes). */
export const InterceptKind = {
  CPUID: 1,
  HLT: 2,
  INVLPG: 3,
  INVPCID: 4,
  RDTSC: 5,
  RDTSCP: 6,
  RDPMC: 7,
  RDMSR: 8,
  WRMSR: 9,
  MOV_CR: 10,
  MOV_DR: 11,
  IO: 12,
  VMX_INSN: 13,
  EXCEPTION: 14,
  EXTERNAL_INTERRUPT: 15,
  INTERRUPT_WINDOW: 16,
  NMI_WINDOW: 17,
  PAUSE: 18,
  MONITOR: 19,
  MWAIT: 20,
  XSETBV: 21,
  WBINVD: 22,
  INVD: 23,
  DESCRIPTOR_TABLE: 24,
  RDRAND: 25,
  RDSEED: 26,
  TRIPLE_FAULT: 27,
  NMI: 28,
  TASK_SWITCH: 29,
  CLTS: 30,
  LMSW: 31,
  /**
   * XSAVES (a = 0) and XRSTORS (a = 1), after the #UD and CPL checks, before #NM and the memory
   * operand's faults (SDM Vol. 3 26.1.1). b = EAX & IA32_XSS, the bits VMX ANDs with the XSS-exiting
   * bitmap (EDX & IA32_XSS is 0: IA32_XSS has no upper bit here). A VMX layer raises #UD here when
   * "enable XSAVES/XRSTORS" is 0 and takes exit 63 / 64 for a bit set in b & the bitmap (SDM Vol. 3
   * 26.1.3, 26.3, Appendix C).
   */
  XSAVES: 32,
} as const;
export type InterceptKind = (typeof InterceptKind)[keyof typeof InterceptKind];

/**
 * The hook a hypervisor layer (VMX) attaches. `intercept` is called before the CPU acts on an
 * interceptable instruction or event; returning true takes it over: the CPU stops with
 * `RunExit.INTERCEPT`, leaving RIP at the instruction (for instructions) and the event undelivered.
 * `a`, `b` are kind-specific: EXCEPTION (vector, error code or -1), IO (port | size << 16 | in << 24,
 * string/rep bits in b), MOV_CR (cr | write << 4 | gpr << 8), RDMSR/WRMSR (ecx), EXTERNAL_INTERRUPT
 * (vector). The current instruction, when there is one, is `cpu.curInsn`.
 */
export interface Intercepts {
  intercept(kind: InterceptKind, a: number, b: number): boolean;
}

/**
 * An output line of the CPU, told of each change: FERR# (SDM Vol. 1 8.7), asserted at a waiting x87
 * instruction while an unmasked x87 exception is pending with CR0.NE = 0, deasserted when the exception
 * flags are cleared. On a PC the platform routes it to IRQ13 and latches it until a write to port F0H.
 */
export interface OutputLine {
  set(asserted: boolean): void;
}

/** An interrupt controller the CPU acknowledges interrupts from (PIC/LAPIC in kvm-api). */
export interface InterruptSource {
  /** Returns the vector of the highest-priority pending interrupt and marks it in service. */
  acknowledge(): number;
}

/** The clock RDTSC reads: cycles (TSC ticks) since VM start. */
export interface TscClock {
  now(): number;
}
