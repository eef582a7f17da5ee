/*
 * A tiny /dev/kvm driver for the mmu-ept differential test (test/kvm-diff.test.ts builds it with gcc).
 *
 * Usage: pfdriver IMAGE < cases
 *   IMAGE is guest-physical memory from address 0 (GDT, IDT, TSS, handlers, page tables, code, data),
 *   built by the test. Each line of stdin is one case:
 *     rip rax cr0 cr3 cr4 efer cpl rflags n addr1 .. addrN          (hex; cpl is 0 or 3)
 *   For each case the driver restores the pristine image, enters 64-bit mode at the given CPL with
 *   RIP/RAX/RFLAGS as given, runs, and prints one line:
 *     case <i> kind=<ok|pf|vec|exit> vec=<n> err=<hex> cr2=<hex> e=<hex>,<hex>,...
 *   where e are the 64-bit words at addr1..addrN after the run (page-table entries: A/D flags).
 * Ports (written by ring-0 exception handlers; user-mode OUT is not usable under every KVM, e.g.
 * kvm_pvm ignores IOPL): 0x11/0x12/0x13 = #PF error code, CR2 low, CR2 high; 0x14 = another
 * exception's vector. The user code ends a successful access with UD2, so "ok" is vector 6.
 * The first line printed is "maxphyaddr <n> gbpages <0|1>" from the guest CPUID.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static void die(const char *what) {
  fprintf(stderr, "pfdriver: %s: %s\n", what, strerror(errno));
  exit(2);
}

static void seg(struct kvm_segment *s, uint16_t sel, uint8_t type, uint8_t dpl, uint8_t l, uint8_t db, uint8_t code_or_data) {
  memset(s, 0, sizeof *s);
  s->base = 0;
  s->limit = 0xffffffff;
  s->selector = sel;
  s->type = type;
  s->present = 1;
  s->dpl = dpl;
  s->db = db;
  s->s = code_or_data;
  s->l = l;
  s->g = 1;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: pfdriver IMAGE < cases\n");
    return 2;
  }
  int img = open(argv[1], O_RDONLY);
  if (img < 0) die("open image");
  struct stat st;
  if (fstat(img, &st) < 0) die("stat image");
  size_t size = (size_t)st.st_size;
  uint8_t *pristine = malloc(size);
  if (!pristine || read(img, pristine, size) != (ssize_t)size) die("read image");
  close(img);

  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) die("open /dev/kvm");
  if (ioctl(kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) die("KVM API version");
  int vm = ioctl(kvm, KVM_CREATE_VM, 0);
  if (vm < 0) die("KVM_CREATE_VM");
  uint8_t *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) die("mmap guest memory");
  struct kvm_userspace_memory_region region = {
      .slot = 0, .flags = 0, .guest_phys_addr = 0, .memory_size = size, .userspace_addr = (uint64_t)mem};
  if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) die("KVM_SET_USER_MEMORY_REGION");
  int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
  if (vcpu < 0) die("KVM_CREATE_VCPU");
  int runsz = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (runsz < 0) die("KVM_GET_VCPU_MMAP_SIZE");
  struct kvm_run *run = mmap(NULL, (size_t)runsz, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
  if (run == MAP_FAILED) die("mmap kvm_run");

  /* The guest sees the host's CPUID as KVM supports it (NX, long mode, MAXPHYADDR). */
  int nent = 256;
  struct kvm_cpuid2 *cpuid = calloc(1, sizeof *cpuid + nent * sizeof(struct kvm_cpuid_entry2));
  cpuid->nent = nent;
  if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, cpuid) < 0) die("KVM_GET_SUPPORTED_CPUID");
  int maxphy = 36, gbpages = 0;
  for (unsigned i = 0; i < cpuid->nent; i++) {
    if (cpuid->entries[i].function == 0x80000008) maxphy = cpuid->entries[i].eax & 0xff;
    if (cpuid->entries[i].function == 0x80000001) gbpages = (cpuid->entries[i].edx >> 26) & 1;
  }
  if (ioctl(vcpu, KVM_SET_CPUID2, cpuid) < 0) die("KVM_SET_CPUID2");
  printf("maxphyaddr %d gbpages %d\n", maxphy, gbpages);
  fflush(stdout);

  char line[4096];
  int caseno = 0;
  while (fgets(line, sizeof line, stdin)) {
    unsigned long long rip, rax, cr0, cr3, cr4, efer, cpl, rflags;
    int n, off = 0;
    if (sscanf(line, "%llx %llx %llx %llx %llx %llx %llx %llx %d%n", &rip, &rax, &cr0, &cr3, &cr4, &efer, &cpl,
               &rflags, &n, &off) < 9)
      continue;
    unsigned long long addrs[16];
    if (n > 16) n = 16;
    char *p = line + off;
    for (int i = 0; i < n; i++) {
      int used = 0;
      if (sscanf(p, "%llx%n", &addrs[i], &used) < 1) die("case line");
      p += used;
    }
    memcpy(mem, pristine, size);

    struct kvm_sregs sregs;
    if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) die("KVM_GET_SREGS");
    /* GDT at 0x1000: 0x08 kernel code64, 0x10 kernel data, 0x18 user data, 0x20 user code64, 0x28 TSS. */
    if (cpl == 3) {
      seg(&sregs.cs, 0x23, 11, 3, 1, 0, 1);
      seg(&sregs.ss, 0x1b, 3, 3, 0, 1, 1);
      seg(&sregs.ds, 0x1b, 3, 3, 0, 1, 1);
    } else {
      seg(&sregs.cs, 0x08, 11, 0, 1, 0, 1);
      seg(&sregs.ss, 0x10, 3, 0, 0, 1, 1);
      seg(&sregs.ds, 0x10, 3, 0, 0, 1, 1);
    }
    sregs.es = sregs.fs = sregs.gs = sregs.ds;
    memset(&sregs.tr, 0, sizeof sregs.tr);
    sregs.tr.base = 0x3000;
    sregs.tr.limit = 0x67;
    sregs.tr.selector = 0x28;
    sregs.tr.type = 11;
    sregs.tr.present = 1;
    memset(&sregs.ldt, 0, sizeof sregs.ldt);
    sregs.ldt.unusable = 1;
    sregs.gdt.base = 0x1000;
    sregs.gdt.limit = 0x37;
    sregs.idt.base = 0x2000;
    sregs.idt.limit = 0xfff;
    sregs.cr0 = cr0;
    sregs.cr3 = cr3;
    sregs.cr4 = cr4;
    sregs.efer = efer;
    if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) die("KVM_SET_SREGS");
    struct kvm_regs regs;
    memset(&regs, 0, sizeof regs);
    regs.rip = rip;
    regs.rax = rax;
    regs.rbx = 0x5a;
    regs.rsp = cpl == 3 ? 0x1ff000 : 0x8ff0;
    regs.rflags = rflags | 2;
    if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0) die("KVM_SET_REGS");

    const char *kind = "exit";
    unsigned vec = 0, err = 0;
    unsigned long long cr2 = 0;
    int exitReason = -1;
    for (int steps = 0; steps < 64; steps++) {
      if (ioctl(vcpu, KVM_RUN, 0) < 0) {
        if (errno == EINTR) continue;
        die("KVM_RUN");
      }
      exitReason = run->exit_reason;
      if (run->exit_reason == KVM_EXIT_IO && run->io.direction == KVM_EXIT_IO_OUT) {
        uint32_t v = *(uint32_t *)((uint8_t *)run + run->io.data_offset);
        if (run->io.port == 0x11) {
          kind = "pf";
          vec = 14;
          err = v;
        } else if (run->io.port == 0x12) {
          cr2 = v;
        } else if (run->io.port == 0x13) {
          cr2 |= (unsigned long long)v << 32;
          break;
        } else if (run->io.port == 0x14) {
          kind = v == 6 ? "ok" : "vec";
          vec = v;
          break;
        }
        continue;
      }
      break;
    }
    printf("case %d kind=%s vec=%u err=%x cr2=%llx exit=%d e=", caseno, kind, vec, err, cr2, exitReason);
    for (int i = 0; i < n; i++) {
      unsigned long long v = 0;
      if (addrs[i] + 8 <= size) memcpy(&v, mem + addrs[i], 8);
      printf(i ? ",%llx" : "%llx", v);
    }
    printf("\n");
    fflush(stdout);
    caseno++;
  }
  return 0;
}
