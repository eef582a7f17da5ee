/**
 * Capability self-consistency: every control this model reports as allowed-1 (and not fixed to 1)
 * changes behaviour. Each bit has a probe run with the control on and off; the observations must
 * differ. The test enumerates the MSRs, so claiming a new control without a probe fails it.
 */
import { describe, expect, it } from "vitest";
import { VmxCaps } from "../src/caps";
import { EntryCtl, ExitCtl, ExitReason, Pin, Proc, Proc2 } from "../src/controls";
import { entryEnv } from "../src/entry";
import { checkControls } from "../src/entry-checks-controls";
import { checkGuestState } from "../src/entry-checks-guest";
import { F, Seg } from "../src/fields";
import * as I from "../src/intercepts";
import { Vmcs } from "../src/vmcs";
import { FlatMemory, type Rig, rig, validVmcs } from "./helpers";

const caps = new VmxCaps();
const mem = new FlatMemory();

function withCtl(field: number, bit: number, on: boolean, extra?: (v: Vmcs) => void): Vmcs {
  const v = new Vmcs();
  if (field === F.SECONDARY_VM_EXEC_CONTROL) v.set32(F.CPU_BASED_VM_EXEC_CONTROL, Proc.ACTIVATE_SECONDARY);
  extra?.(v);
  v.set32(field, on ? v.get32(field) | bit : v.get32(field) & ~bit);
  return v;
}

/** Run entry (and optionally an exit) on a valid VMCS with the control set or clear. */
function trip(
  field: number,
  bit: number,
  on: boolean,
  setup: (r: Rig) => void,
  observe: (r: Rig) => unknown,
) {
  const r = rig();
  validVmcs(r);
  setup(r);
  const v = r.unit.vmcs;
  v.set32(field, on ? v.get32(field) | bit : v.get32(field) & ~bit);
  r.unit.vmlaunch();
  return observe(r);
}

type Probe = (on: boolean) => unknown;
const P = F.PIN_BASED_VM_EXEC_CONTROL;
const C = F.CPU_BASED_VM_EXEC_CONTROL;
const S = F.SECONDARY_VM_EXEC_CONTROL;
const X = F.VM_EXIT_CONTROLS;
const N = F.VM_ENTRY_CONTROLS;

const PIN: Record<number, Probe> = {
  [Pin.EXT_INTR_EXITING]: (on) => I.externalInterruptExits(withCtl(P, Pin.EXT_INTR_EXITING, on)),
  [Pin.NMI_EXITING]: (on) => I.nmiExits(withCtl(P, Pin.NMI_EXITING, on)),
  [Pin.VIRTUAL_NMIS]: (on) => {
    const r = rig();
    validVmcs(r);
    const v = r.unit.vmcs;
    v.set32(P, v.get32(P) | Pin.NMI_EXITING | (on ? Pin.VIRTUAL_NMIS : 0));
    v.set32(F.VM_ENTRY_INTR_INFO_FIELD, 0x80000202);
    v.set32(F.GUEST_INTERRUPTIBILITY_INFO, 8);
    return checkGuestState(entryEnv(r.unit))?.rule ?? null;
  },
  [Pin.PREEMPTION_TIMER]: (on) =>
    trip(
      P,
      Pin.PREEMPTION_TIMER,
      on,
      () => {},
      (r) => r.unit.preemptionTick(0),
    ),
};

const ioBitmaps = (v: Vmcs) => {
  v.set32(C, Proc.UNCOND_IO_EXITING);
  v.set64(F.IO_BITMAP_A, 0x40000n);
};
const PROC: Record<number, Probe> = {
  [Proc.INTR_WINDOW_EXITING]: (on) =>
    I.interruptWindowExit(withCtl(C, Proc.INTR_WINDOW_EXITING, on), true, 0),
  [Proc.USE_TSC_OFFSETTING]: (on) =>
    I.guestTsc(
      withCtl(C, Proc.USE_TSC_OFFSETTING, on, (v) => v.set64(F.TSC_OFFSET, 5n)),
      100n,
    ),
  [Proc.HLT_EXITING]: (on) => I.hltExit(withCtl(C, Proc.HLT_EXITING, on)),
  [Proc.INVLPG_EXITING]: (on) => I.invlpgExit(withCtl(C, Proc.INVLPG_EXITING, on)),
  [Proc.MWAIT_EXITING]: (on) => I.mwaitExit(withCtl(C, Proc.MWAIT_EXITING, on)),
  [Proc.RDPMC_EXITING]: (on) => I.rdpmcExit(withCtl(C, Proc.RDPMC_EXITING, on)),
  [Proc.RDTSC_EXITING]: (on) => I.rdtscExit(withCtl(C, Proc.RDTSC_EXITING, on)),
  [Proc.CR3_LOAD_EXITING]: (on) => I.movToCr3Exit(withCtl(C, Proc.CR3_LOAD_EXITING, on), 0x1000n),
  [Proc.CR3_STORE_EXITING]: (on) => I.movFromCr3Exit(withCtl(C, Proc.CR3_STORE_EXITING, on)),
  [Proc.CR8_LOAD_EXITING]: (on) => I.movToCr8Exit(withCtl(C, Proc.CR8_LOAD_EXITING, on)),
  [Proc.CR8_STORE_EXITING]: (on) => I.movFromCr8Exit(withCtl(C, Proc.CR8_STORE_EXITING, on)),
  [Proc.USE_TPR_SHADOW]: (on) => I.tprShadowActive(withCtl(C, Proc.USE_TPR_SHADOW, on)),
  [Proc.NMI_WINDOW_EXITING]: (on) => I.nmiWindowExit(withCtl(C, Proc.NMI_WINDOW_EXITING, on), 0),
  [Proc.MOV_DR_EXITING]: (on) => I.movDrExit(withCtl(C, Proc.MOV_DR_EXITING, on)),
  [Proc.UNCOND_IO_EXITING]: (on) => I.ioExit(withCtl(C, Proc.UNCOND_IO_EXITING, on), mem, 0x80, 1),
  [Proc.USE_IO_BITMAPS]: (on) => I.ioExit(withCtl(C, Proc.USE_IO_BITMAPS, on, ioBitmaps), mem, 0x80, 1),
  [Proc.MONITOR_TRAP_FLAG]: (on) => I.mtfExit(withCtl(C, Proc.MONITOR_TRAP_FLAG, on), 0),
  [Proc.USE_MSR_BITMAPS]: (on) =>
    I.msrExit(
      withCtl(C, Proc.USE_MSR_BITMAPS, on, (v) => v.set64(F.MSR_BITMAP, 0x40000n)),
      mem,
      0x10,
      false,
    ),
  [Proc.MONITOR_EXITING]: (on) => I.monitorExit(withCtl(C, Proc.MONITOR_EXITING, on)),
  [Proc.PAUSE_EXITING]: (on) => I.pauseExit(withCtl(C, Proc.PAUSE_EXITING, on)),
  [Proc.ACTIVATE_SECONDARY]: (on) =>
    I.wbinvdExit(withCtl(C, Proc.ACTIVATE_SECONDARY, on, (v) => v.set32(S, Proc2.WBINVD_EXITING))),
};

const controlsRule = (on: boolean, bit: number, setup: (r: Rig) => void) => {
  const r = rig();
  validVmcs(r);
  setup(r);
  const v = r.unit.vmcs;
  v.set32(C, v.get32(C) | Proc.ACTIVATE_SECONDARY);
  v.set32(S, on ? v.get32(S) | bit : v.get32(S) & ~bit);
  return checkControls(entryEnv(r.unit)) ?? checkGuestState(entryEnv(r.unit))?.rule ?? null;
};
const PROC2: Record<number, Probe> = {
  [Proc2.VIRTUALIZE_APIC_ACCESSES]: (on) =>
    I.apicAccessExit(
      withCtl(S, Proc2.VIRTUALIZE_APIC_ACCESSES, on, (v) => v.set64(F.APIC_ACCESS_ADDR, 0xfee00000n)),
      0xfee00300,
      4,
      1,
    ),
  [Proc2.ENABLE_EPT]: (on) => controlsRule(on, Proc2.ENABLE_EPT, (r) => r.unit.vmcs.set64(F.EPT_POINTER, 0n)),
  [Proc2.DESC_TABLE_EXITING]: (on) => I.descriptorTableExit(withCtl(S, Proc2.DESC_TABLE_EXITING, on), false),
  [Proc2.ENABLE_RDTSCP]: (on) => I.rdtscpExit(withCtl(S, Proc2.ENABLE_RDTSCP, on)),
  [Proc2.ENABLE_VPID]: (on) => controlsRule(on, Proc2.ENABLE_VPID, () => {}),
  [Proc2.WBINVD_EXITING]: (on) => I.wbinvdExit(withCtl(S, Proc2.WBINVD_EXITING, on)),
  [Proc2.UNRESTRICTED_GUEST]: (on) =>
    controlsRule(on, Proc2.UNRESTRICTED_GUEST, (r) => {
      r.unit.vmcs.set32(S, Proc2.ENABLE_EPT);
      r.unit.vmcs.set64(F.EPT_POINTER, 0x601en);
      r.unit.vmcs.set64(F.GUEST_CR0, 0x80000030n);
    }),
  [Proc2.PAUSE_LOOP_EXITING]: (on) =>
    trip(
      C,
      Proc.ACTIVATE_SECONDARY,
      true,
      (r) => {
        r.unit.vmcs.set32(S, on ? Proc2.PAUSE_LOOP_EXITING : 0);
        r.unit.vmcs.set32(F.PLE_GAP, 10);
        r.unit.vmcs.set32(F.PLE_WINDOW, 20);
      },
      (r) => [0, 5, 10, 15, 20, 25].map((t) => r.unit.pause(0, t)),
    ),
  [Proc2.RDRAND_EXITING]: (on) => I.rdrandExit(withCtl(S, Proc2.RDRAND_EXITING, on)),
  [Proc2.ENABLE_INVPCID]: (on) => I.invpcidExit(withCtl(S, Proc2.ENABLE_INVPCID, on)),
  [Proc2.ENABLE_VMFUNC]: (on) =>
    trip(
      C,
      Proc.ACTIVATE_SECONDARY,
      true,
      (r) => r.unit.vmcs.set32(S, on ? Proc2.ENABLE_VMFUNC : 0),
      (r) => r.unit.vmfunc(0, 0),
    ),
  [Proc2.RDSEED_EXITING]: (on) => I.rdseedExit(withCtl(S, Proc2.RDSEED_EXITING, on)),
  [Proc2.ENABLE_XSAVES]: (on) => I.xsavesExit(withCtl(S, Proc2.ENABLE_XSAVES, on), 0, false),
  [Proc2.TSC_SCALING]: (on) =>
    I.guestTsc(
      withCtl(S, Proc2.TSC_SCALING, on, (v) => {
        v.set32(C, Proc.ACTIVATE_SECONDARY | Proc.USE_TSC_OFFSETTING);
        v.set64(F.TSC_MULTIPLIER, 3n << 48n);
      }),
      100n,
    ),
};

const exitTrip =
  (bit: number, setup: (r: Rig) => void, observe: (r: Rig) => unknown): Probe =>
  (on) =>
    trip(X, bit, on, setup, (r) => {
      r.cpu.dr7 = 0x403n;
      r.cpu.pat = 0x0606060606060606n;
      r.cpu.efer = 0xd01n;
      r.unit.exit({ reason: ExitReason.EXTERNAL_INTERRUPT });
      return observe(r);
    });
const EXIT: Record<number, Probe> = {
  [ExitCtl.SAVE_DEBUG_CONTROLS]: exitTrip(
    ExitCtl.SAVE_DEBUG_CONTROLS,
    () => {},
    (r) => r.unit.vmcs.get64(F.GUEST_DR7),
  ),
  [ExitCtl.HOST_ADDR_SPACE_SIZE]: (on) => {
    const r = rig();
    validVmcs(r);
    const v = r.unit.vmcs;
    v.set32(X, on ? v.get32(X) | ExitCtl.HOST_ADDR_SPACE_SIZE : v.get32(X) & ~ExitCtl.HOST_ADDR_SPACE_SIZE);
    const bad = checkControls(entryEnv(r.unit));
    if (bad !== null) return bad;
    r.unit.vmlaunch();
    r.unit.exit({ reason: ExitReason.HLT });
    return r.cpu.getSegment(Seg.CS).ar;
  },
  [ExitCtl.ACK_INTR_ON_EXIT]: (on) =>
    I.externalInterruptExitInfo(withCtl(X, ExitCtl.ACK_INTR_ON_EXIT, on), 0x20),
  [ExitCtl.SAVE_PAT]: exitTrip(
    ExitCtl.SAVE_PAT,
    () => {},
    (r) => r.unit.vmcs.get64(F.GUEST_IA32_PAT),
  ),
  [ExitCtl.LOAD_PAT]: exitTrip(
    ExitCtl.LOAD_PAT,
    (r) => r.unit.vmcs.set64(F.HOST_IA32_PAT, 0x0404040404040404n),
    (r) => r.cpu.pat,
  ),
  [ExitCtl.SAVE_EFER]: exitTrip(
    ExitCtl.SAVE_EFER,
    () => {},
    (r) => r.unit.vmcs.get64(F.GUEST_IA32_EFER),
  ),
  [ExitCtl.LOAD_EFER]: exitTrip(
    ExitCtl.LOAD_EFER,
    (r) => r.unit.vmcs.set64(F.HOST_IA32_EFER, 0x501n),
    (r) => r.cpu.efer,
  ),
  [ExitCtl.SAVE_PREEMPTION_TIMER]: (on) =>
    trip(
      X,
      ExitCtl.SAVE_PREEMPTION_TIMER,
      on,
      (r) => {
        const v = r.unit.vmcs;
        v.set32(P, v.get32(P) | Pin.PREEMPTION_TIMER);
        v.set32(F.VMX_PREEMPTION_TIMER_VALUE, 7);
      },
      (r) => {
        r.unit.preemptionTick(64);
        r.unit.exit({ reason: ExitReason.HLT });
        return r.unit.vmcs.get32(F.VMX_PREEMPTION_TIMER_VALUE);
      },
    ),
};

const ENTRY: Record<number, Probe> = {
  [EntryCtl.LOAD_DEBUG_CONTROLS]: (on) =>
    trip(
      N,
      EntryCtl.LOAD_DEBUG_CONTROLS,
      on,
      (r) => r.unit.vmcs.set64(F.GUEST_DR7, 0x4ffn),
      (r) => r.cpu.dr7,
    ),
  [EntryCtl.IA32E_MODE_GUEST]: (on) =>
    trip(
      N,
      EntryCtl.IA32E_MODE_GUEST,
      on,
      (r) => r.unit.vmcs.set32(F.GUEST_CS_AR_BYTES, 0xc09b),
      (r) => r.cpu.efer & 0x400n,
    ),
  [EntryCtl.LOAD_PAT]: (on) =>
    trip(
      N,
      EntryCtl.LOAD_PAT,
      on,
      (r) => r.unit.vmcs.set64(F.GUEST_IA32_PAT, 6n),
      (r) => r.cpu.pat,
    ),
  [EntryCtl.LOAD_EFER]: (on) =>
    trip(
      N,
      EntryCtl.LOAD_EFER,
      on,
      (r) => r.unit.vmcs.set64(F.GUEST_IA32_EFER, 0x500n),
      (r) => r.cpu.efer,
    ),
};

const MSRS: [string, number, Record<number, Probe>][] = [
  ["IA32_VMX_TRUE_PINBASED_CTLS", 0x48d, PIN],
  ["IA32_VMX_TRUE_PROCBASED_CTLS", 0x48e, PROC],
  ["IA32_VMX_PROCBASED_CTLS2", 0x48b, PROC2],
  ["IA32_VMX_TRUE_EXIT_CTLS", 0x48f, EXIT],
  ["IA32_VMX_TRUE_ENTRY_CTLS", 0x490, ENTRY],
];

describe("every control reported allowed-1 (and not fixed to 1) is implemented", () => {
  for (const [name, index, probes] of MSRS) {
    const v = caps.readMsr(index)!;
    const must1 = Number(v & 0xffffffffn);
    const may1 = Number(v >> 32n);
    const free = (may1 & ~must1) >>> 0;
    it(`${name}: the claimed controls are exactly the probed ones`, () => {
      const probed = Object.keys(probes).reduce((a, k) => a | Number(k), 0) >>> 0;
      expect(probed.toString(2)).toBe(free.toString(2));
    });
    for (let b = 0; b < 32; b++) {
      const bit = (1 << b) >>> 0;
      if ((free & bit) === 0) continue;
      it(`${name} bit ${b} changes behaviour`, () => {
        const probe = probes[bit | 0] ?? probes[bit];
        expect(probe).toBeDefined();
        expect(probe!(true)).not.toEqual(probe!(false));
      });
    }
  }
});
