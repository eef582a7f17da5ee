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
import { encWidth, F, FieldWidth, guestSegFields, type Seg } from "./fields";
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

type AnyCheck = (env: EntryCheckEnv) => string | GuestCheckFailure | null;

/** Does the field have an upper half (64-bit and natural-width fields)? */
function fieldHasHighHalf(enc: number): boolean {
  const w = encWidth(enc);
  return w === FieldWidth.W64 || w === FieldWidth.Natural;
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
 *
 * The inputs of all checks are one table of (word of `Vmcs.words`, mask) entries, each with the
 * value it had at the previous VM entry. An entry compares the table once; a check whose entries
 * moved loses its "passed" mark before any check runs, so a check the sequence did not reach (an
 * earlier one failed) cannot later be skipped on a value it never saw.
 */
export class EntryChecks {
  private readonly mem: NotingMemory;
  private readonly env: EntryCheckEnv;
  private readonly checks: AnyCheck[] = [];
  /** Index in `checks` where the host-state and the guest-state checks begin. */
  private readonly hostStart: number;
  private readonly guestStart: number;
  /** Input table: word, mask, value at the previous entry. */
  private readonly word: Int16Array;
  private readonly mask: Int32Array;
  private readonly seen: Int32Array;
  /** Per check, the input-table entries it reads: a bitmap of `stride` words. */
  private readonly deps: Uint32Array;
  private readonly stride: number;
  /** Input-table entries that moved at this entry (bitmap). */
  private readonly moved: Uint32Array;
  private readonly passed: Uint8Array;

  constructor(unit: EntryCheckUnit) {
    const vmcs = unit.vmcs;
    this.mem = new NotingMemory(unit.mem);
    this.env = { vmcs, caps: unit.caps, mem: this.mem, eptpValid: unit.eptpValid, hostLma: false };
    const table = new Map<string, number>();
    const entries: [number, number][] = [];
    const depLists: number[][] = [];
    const groups = [ENTRY_CHECK_INPUTS.controls, ENTRY_CHECK_INPUTS.host, ENTRY_CHECK_INPUTS.guest];
    const starts: number[] = [];
    for (const group of groups) {
      starts.push(this.checks.length);
      for (const { check, inputs } of group) {
        const deps: number[] = [];
        for (const input of inputs as readonly CheckInput[]) {
          const [field, lowMask] = typeof input === "number" ? [input, -1] : input;
          const w = vmcs.wordOf(field);
          // 16- and 32-bit fields are read through their low word only (get32).
          const wide = typeof input === "number" && fieldHasHighHalf(field);
          const words: [number, number][] = wide
            ? [
                [w, -1],
                [w + 1, -1],
              ]
            : [[w, lowMask]];
          for (const e of words) {
            const key = `${e[0]}:${e[1]}`;
            let i = table.get(key);
            if (i === undefined) {
              i = entries.length;
              table.set(key, i);
              entries.push(e);
            }
            deps.push(i);
          }
        }
        this.checks.push(check);
        depLists.push(deps);
      }
    }
    this.hostStart = starts[1]!;
    this.guestStart = starts[2]!;
    this.word = Int16Array.from(entries, (e) => e[0]);
    this.mask = Int32Array.from(entries, (e) => e[1]);
    this.seen = new Int32Array(entries.length);
    this.stride = (entries.length + 31) >>> 5;
    this.moved = new Uint32Array(this.stride);
    this.deps = new Uint32Array(this.stride * this.checks.length);
    depLists.forEach((deps, c) => {
      for (const i of deps) this.deps[c * this.stride + (i >>> 5)]! |= 1 << (i & 31);
    });
    this.passed = new Uint8Array(this.checks.length);
  }

  /**
   * Compares the input table with the previous entry and unmarks the checks whose inputs moved;
   * VM entry calls it first. `hostLma`: IA32_EFER.LMA of the processor (an input of 27.2.4).
   */
  begin(hostLma: boolean): void {
    const words = this.env.vmcs.signedWords;
    const { word, mask, seen, moved, stride, deps, passed } = this;
    let any = 0;
    for (let j = 0; j < stride; j++) moved[j] = 0;
    for (let i = 0; i < word.length; i++) {
      const v = words[word[i]!]!;
      if (((v ^ seen[i]!) & mask[i]!) !== 0) {
        seen[i] = v;
        moved[i >>> 5]! |= 1 << (i & 31);
        any = 1;
      }
    }
    if (any !== 0) {
      for (let c = 0; c < passed.length; c++) {
        if (passed[c] === 0) continue;
        for (let j = 0; j < stride; j++)
          if ((deps[c * stride + j]! & moved[j]!) !== 0) {
            passed[c] = 0;
            break;
          }
      }
    }
    if (hostLma !== this.env.hostLma) {
      this.env.hostLma = hostLma;
      passed.fill(0, this.hostStart, this.guestStart);
    }
  }

  /** 27.2.1: the rule that failed, or null (`checkControls`). */
  controls(): string | null {
    return this.run(0, this.hostStart) as string | null;
  }

  /** 27.2.2-27.2.4 (`checkHostState`). */
  host(): string | null {
    return this.run(this.hostStart, this.guestStart) as string | null;
  }

  /** 27.3.1.1-27.3.1.5 (`checkGuestState`). */
  guest(): GuestCheckFailure | null {
    return this.run(this.guestStart, this.checks.length) as GuestCheckFailure | null;
  }

  /** 27.3.1.6, never cached: it also yields the PDPTEs to load (`checkGuestPdptes`). */
  pdptes(): GuestCheckFailure | bigint[] | null {
    return checkGuestPdptes(this.env);
  }

  private run(from: number, to: number): string | GuestCheckFailure | null {
    for (let c = from; c < to; c++) {
      if (this.passed[c] === 1) continue;
      this.mem.touched = false;
      const r = this.checks[c]!(this.env);
      if (r !== null) return r;
      // A run that read memory proves nothing about the next one.
      if (!this.mem.touched) this.passed[c] = 1;
    }
    return null;
  }
}
