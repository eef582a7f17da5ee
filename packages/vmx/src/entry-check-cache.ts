/**
 * The VM-entry checks of SDM Vol. 3C 27.2 and 27.3.1, run only when an input changed.
 *
 * Every VMLAUNCH/VMRESUME performs all the checks (27.2: "VM entries perform checks"). Nothing
 * guarantees that the guest state a VM exit stored passes them again: 28.3 saves the processor's
 * state as it is, and states the entry checks reject are reachable (IA32_DEBUGCTL bits the guest
 * wrote, the activity state and blocking of the exit point, and so on), so the state a VM exit
 * wrote is an input like any other and every entry must behave as if it ran every check.
 *
 * Each check below is a pure function of (a) VMCS bits, (b) the unit's `VmxCaps` and EPTP
 * validity function, both fixed when the unit is built, (c) IA32_EFER.LMA of the processor
 * executing VMLAUNCH/VMRESUME (27.2.4), and (d) physical memory (the VTPR byte of 27.2.1.1, the
 * VMCS link pointer's revision identifier of 27.3.1.5). A check that passed is skipped while all of
 * its VMCS input bits are bit-identical to the values it passed with and (c) is unchanged: it would
 * pass again, so the outcome (the first failing rule in the SDM's order, or entry) is the one the
 * full sequence gives. A run that read memory is never cached, since memory can change without the
 * VMCS changing. Inputs are compared as values, not tracked as writes, so every way a VMCS changes
 * (VMWRITE, VMPTRLD of another region into the same cache, a VM exit, a restored snapshot, direct
 * writes to `Vmcs.words`) is covered.
 *
 * `ENTRY_CHECK_INPUTS` lists the inputs next to each check; a property test flips every bit
 * outside them and requires the check's result not to move.
 */
import {
  checkEntryControls,
  checkExecutionControls,
  checkExitControls,
  type EntryCheckEnv,
} from "./entry-checks-controls";
import {
  checkGuestDescriptorTables,
  checkGuestNonRegister,
  checkGuestPdptes,
  checkGuestRegisters,
  checkGuestRipRflags,
  checkGuestSegments,
  type GuestCheckFailure,
} from "./entry-checks-guest";
import {
  checkHostAddressSpace,
  checkHostRegisters,
  checkHostSegments,
  HOST_BASES,
  HOST_SELECTORS,
} from "./entry-checks-host";
import { F, guestSegFields, type Seg } from "./fields";
import type { VmxPhysMemory } from "./iface";
import type { Vmcs } from "./vmcs";

/** A VMCS input of a check: a field, or a field and the mask of the low-half bits the check reads. */
export type CheckInput = number | readonly [field: number, lowMask: number];

const SECONDARY = [F.CPU_BASED_VM_EXEC_CONTROL, F.SECONDARY_VM_EXEC_CONTROL, F.VM_ENTRY_CONTROLS] as const;
const CR0_PE: CheckInput = [F.GUEST_CR0, 1];
const ALL_GUEST_SEGMENT_FIELDS = [0, 1, 2, 3, 4, 5, 6, 7].flatMap((s) => {
  const f = guestSegFields(s as Seg);
  return [f.sel, f.base, f.limit, f.ar];
});

/** Each cached check, in the SDM's order within its group, with the VMCS bits it reads. */
export const ENTRY_CHECK_INPUTS = {
  controls: [
    {
      check: checkExecutionControls,
      inputs: [
        F.PIN_BASED_VM_EXEC_CONTROL,
        F.CPU_BASED_VM_EXEC_CONTROL,
        F.SECONDARY_VM_EXEC_CONTROL,
        F.CR3_TARGET_COUNT,
        F.IO_BITMAP_A,
        F.IO_BITMAP_B,
        F.MSR_BITMAP,
        F.VIRTUAL_APIC_PAGE_ADDR,
        F.TPR_THRESHOLD,
        F.APIC_ACCESS_ADDR,
        F.VIRTUAL_PROCESSOR_ID,
        F.EPT_POINTER,
        F.VM_FUNCTION_CONTROL,
        F.EPTP_LIST_ADDRESS,
      ],
    },
    {
      check: checkExitControls,
      inputs: [
        F.VM_EXIT_CONTROLS,
        F.PIN_BASED_VM_EXEC_CONTROL,
        F.VM_EXIT_MSR_STORE_ADDR,
        F.VM_EXIT_MSR_STORE_COUNT,
        F.VM_EXIT_MSR_LOAD_ADDR,
        F.VM_EXIT_MSR_LOAD_COUNT,
      ],
    },
    {
      check: checkEntryControls,
      inputs: [
        ...SECONDARY,
        F.VM_ENTRY_INTR_INFO_FIELD,
        F.VM_ENTRY_EXCEPTION_ERROR_CODE,
        F.VM_ENTRY_INSTRUCTION_LEN,
        F.VM_ENTRY_MSR_LOAD_ADDR,
        F.VM_ENTRY_MSR_LOAD_COUNT,
        CR0_PE,
      ],
    },
  ],
  host: [
    {
      check: checkHostRegisters,
      inputs: [
        F.VM_EXIT_CONTROLS,
        F.HOST_CR0,
        F.HOST_CR3,
        F.HOST_CR4,
        F.HOST_IA32_SYSENTER_ESP,
        F.HOST_IA32_SYSENTER_EIP,
        F.HOST_IA32_PAT,
        F.HOST_IA32_EFER,
      ],
    },
    {
      check: checkHostSegments,
      inputs: [F.VM_EXIT_CONTROLS, ...HOST_SELECTORS, ...HOST_BASES],
    },
    {
      check: checkHostAddressSpace,
      inputs: [F.VM_EXIT_CONTROLS, F.VM_ENTRY_CONTROLS, F.HOST_CR4, F.HOST_RIP],
    },
  ],
  guest: [
    {
      check: checkGuestRegisters,
      inputs: [
        ...SECONDARY,
        F.GUEST_CR0,
        F.GUEST_CR3,
        F.GUEST_CR4,
        F.GUEST_IA32_DEBUGCTL,
        F.GUEST_DR7,
        F.GUEST_SYSENTER_ESP,
        F.GUEST_SYSENTER_EIP,
        F.GUEST_IA32_PAT,
        F.GUEST_IA32_EFER,
      ],
    },
    {
      check: checkGuestSegments,
      // RFLAGS.VM and CR0.PE only: arithmetic flags change on nearly every exit.
      inputs: [...SECONDARY, ...ALL_GUEST_SEGMENT_FIELDS, [F.GUEST_RFLAGS, 0x20000], CR0_PE],
    },
    {
      check: checkGuestDescriptorTables,
      inputs: [F.GUEST_GDTR_BASE, F.GUEST_GDTR_LIMIT, F.GUEST_IDTR_BASE, F.GUEST_IDTR_LIMIT],
    },
    {
      check: checkGuestRipRflags,
      inputs: [
        ...SECONDARY,
        F.GUEST_RIP,
        F.GUEST_CS_AR_BYTES,
        F.GUEST_RFLAGS,
        CR0_PE,
        F.VM_ENTRY_INTR_INFO_FIELD,
      ],
    },
    {
      check: checkGuestNonRegister,
      inputs: [
        F.GUEST_ACTIVITY_STATE,
        F.GUEST_INTERRUPTIBILITY_INFO,
        F.VM_ENTRY_INTR_INFO_FIELD,
        // TF and IF.
        [F.GUEST_RFLAGS, 0x300],
        F.GUEST_SS_AR_BYTES,
        F.PIN_BASED_VM_EXEC_CONTROL,
        F.GUEST_PENDING_DBG_EXCEPTIONS,
        F.GUEST_IA32_DEBUGCTL,
        F.VMCS_LINK_POINTER,
      ],
    },
  ],
} as const satisfies Record<
  string,
  readonly {
    check: (env: EntryCheckEnv) => string | GuestCheckFailure | null;
    inputs: readonly CheckInput[];
  }[]
>;

/** `VmxPhysMemory` that notes whether a check read it. */
class NotingMemory implements VmxPhysMemory {
  touched = false;
  constructor(private readonly mem: VmxPhysMemory) {}
  read(pa: number, dst: Uint8Array): void {
    this.touched = true;
    this.mem.read(pa, dst);
  }
  write(pa: number, src: Uint8Array): void {
    this.mem.write(pa, src);
  }
}

/** One check, the words of `Vmcs.words` it reads, and their values when it last passed. */
class CachedCheck<R> {
  private readonly words: Int16Array;
  private readonly masks: Int32Array;
  private readonly seen: Uint32Array;
  private passed = false;

  constructor(
    vmcs: Vmcs,
    private readonly check: (env: EntryCheckEnv) => R | null,
    inputs: readonly CheckInput[],
  ) {
    this.words = new Int16Array(2 * inputs.length);
    this.masks = new Int32Array(2 * inputs.length);
    this.seen = new Uint32Array(2 * inputs.length);
    inputs.forEach((input, i) => {
      const [field, lowMask] = typeof input === "number" ? [input, -1] : input;
      const w = vmcs.wordOf(field);
      this.words[2 * i] = w;
      this.masks[2 * i] = lowMask;
      this.words[2 * i + 1] = w + 1;
      this.masks[2 * i + 1] = typeof input === "number" ? -1 : 0;
    });
  }

  run(env: EntryCheckEnv, mem: NotingMemory): R | null {
    const words = env.vmcs.words;
    if (this.passed && this.unchanged(words)) return null;
    mem.touched = false;
    const r = this.check(env);
    this.passed = r === null && !mem.touched;
    if (this.passed) for (let i = 0; i < this.words.length; i++) this.seen[i] = words[this.words[i]!]!;
    return r;
  }

  private unchanged(words: Uint32Array): boolean {
    for (let i = 0; i < this.words.length; i++)
      if (((words[this.words[i]!]! ^ this.seen[i]!) & this.masks[i]!) !== 0) return false;
    return true;
  }

  forget(): void {
    this.passed = false;
  }
}

/** What `EntryChecks` needs from its VMX unit. */
export interface EntryCheckUnit {
  readonly vmcs: Vmcs;
  readonly caps: EntryCheckEnv["caps"];
  readonly mem: VmxPhysMemory;
  readonly eptpValid: (eptp: bigint) => boolean;
}

/**
 * The checks of 27.2.1 (controls), 27.2.2-27.2.4 (host state) and 27.3.1.1-27.3.1.5 (guest state)
 * of one VMX unit's current VMCS, each skipped while its inputs match a passing run.
 */
export class EntryChecks {
  private readonly mem: NotingMemory;
  private readonly env: EntryCheckEnv;
  private readonly controlChecks: CachedCheck<string>[];
  private readonly hostChecks: CachedCheck<string>[];
  private readonly guestChecks: CachedCheck<GuestCheckFailure>[];

  constructor(unit: EntryCheckUnit) {
    this.mem = new NotingMemory(unit.mem);
    this.env = { vmcs: unit.vmcs, caps: unit.caps, mem: this.mem, eptpValid: unit.eptpValid, hostLma: false };
    const cache = <R>(
      list: readonly { check: (env: EntryCheckEnv) => R | null; inputs: readonly CheckInput[] }[],
    ) => list.map((c) => new CachedCheck(unit.vmcs, c.check, c.inputs));
    this.controlChecks = cache(ENTRY_CHECK_INPUTS.controls);
    this.hostChecks = cache(ENTRY_CHECK_INPUTS.host);
    this.guestChecks = cache(ENTRY_CHECK_INPUTS.guest);
  }

  /** 27.2.1: the rule that failed, or null (`checkControls`). */
  controls(): string | null {
    return this.first(this.controlChecks);
  }

  /** 27.2.2-27.2.4 for a processor with IA32_EFER.LMA = `hostLma` (`checkHostState`). */
  host(hostLma: boolean): string | null {
    if (hostLma !== this.env.hostLma) {
      for (const c of this.hostChecks) c.forget();
      this.env.hostLma = hostLma;
    }
    return this.first(this.hostChecks);
  }

  /** 27.3.1.1-27.3.1.5 (`checkGuestState`). */
  guest(): GuestCheckFailure | null {
    return this.first(this.guestChecks);
  }

  /** 27.3.1.6, never cached: it also yields the PDPTEs to load (`checkGuestPdptes`). */
  pdptes(): GuestCheckFailure | bigint[] | null {
    return checkGuestPdptes(this.env);
  }

  private first<R>(checks: CachedCheck<R>[]): R | null {
    for (const c of checks) {
      const r = c.run(this.env, this.mem);
      if (r !== null) return r;
    }
    return null;
  }
}
