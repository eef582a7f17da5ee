/** The README's example, kept compiling and passing. */
import { expect, it } from "vitest";
import { ExitReason, F, ioExit, ioQualification, NO_EXIT, Proc, VmxCaps, VmxUnit } from "../src/index";
import { FlatMemory, TestCpu, validVmcs } from "../src/testing";

it("README example: VMXON, VMPTRLD, VMLAUNCH, an I/O exit, VMRESUME", () => {
  // --- README begin
  const caps = new VmxCaps({ physAddrBits: 39 }); // the capability MSRs: caps.readMsr(0x480)
  const mem = new FlatMemory(); // any VmxPhysMemory
  const cpu = new TestCpu(); // any VmxCpuState: 64-bit ring 0, CR4.VMXE = 1
  const unit = new VmxUnit({ caps, cpu, mem });
  mem.setU32(0x1000, caps.config.revisionId); // VMXON region
  mem.setU32(0x2000, caps.config.revisionId); // VMCS region
  unit.vmxon(() => 0x1000n); // memory operands are callbacks
  unit.vmptrld(() => 0x2000n);
  validVmcs({ caps, mem, cpu, unit }); // host + guest state that pass every entry check
  unit.vmwrite(BigInt(F.CPU_BASED_VM_EXEC_CONTROL), () =>
    BigInt(caps.trueProc.must1 | Proc.UNCOND_IO_EXITING),
  );
  const entered = unit.vmlaunch(); // { kind: "entered", inject: null }

  // The guest executes OUT 0x3F8, AL: the CPU asks the decision, then exits.
  if (ioExit(unit.vmcs, mem, 0x3f8, 1) !== NO_EXIT)
    unit.exit({
      reason: ExitReason.IO_INSTRUCTION,
      qualification: BigInt(ioQualification(0x3f8, 1, false, false, false, false)),
      instructionLength: 1,
    });
  // Back in the host: read why, skip the instruction, resume.
  let reason = 0n;
  unit.vmread(BigInt(F.VM_EXIT_REASON), (v) => {
    reason = v;
  });
  unit.vmwrite(BigInt(F.GUEST_RIP), () => unit.vmcs.get64(F.GUEST_RIP) + 1n);
  const resumed = unit.vmresume();
  // --- README end
  expect(entered).toEqual({ kind: "entered", inject: null });
  expect(reason).toBe(30n);
  expect(resumed.kind).toBe("entered");
  expect(cpu.rip).toBe(0x1001n);
});
