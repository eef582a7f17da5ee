/*
 * A minimal KVM runner used as a reference by test/kvm-boot.test.ts: it boots the guest memory
 * image and vCPU state that tskvm's loaders produced on the host's real KVM (/dev/kvm), so the
 * loaders' output is checked by hardware virtualization no one here wrote.
 *
 *   kvm-run MEM_FILE STATE_FILE [TIMEOUT_S] [--bridge]
 *
 * MEM_FILE is guest RAM from gpa 0. STATE_FILE has one "name value..." line per register:
 *   rip/rsi/rax/... N;  cr0/cr3/cr4/efer N;  gdt BASE LIMIT;  idt BASE LIMIT;
 *   cs/ds/es/fs/gs/ss/tr/ldt SELECTOR BASE LIMIT TYPE PRESENT DPL DB S L G
 * Devices: COM1 output (0x3f8) goes to stdout and LSR (0x3fd) reads "transmitter empty";
 * isa-debug-exit at 0xf4 ends the run with status (value << 1) | 1; other ports read 0xff.
 * With --bridge, every port access goes to the parent instead (tskvm's own device models):
 * one line "o PORT SIZE VALUE" or "i PORT SIZE" per access on stdout, answered by one line on
 * stdin: "VALUE" optionally followed by "IRQ=LEVEL" pairs (KVM_IRQ_LINE) and "q STATUS" (stop).
 * An in-kernel irqchip and PIT are created, as a VMM would. Exit: the debug-exit status, 100 on
 * HLT, 101 on shutdown (triple fault), 102 on entry failure/internal error, 103 on timeout.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static void die(const char *what) {
  perror(what);
  exit(120);
}

static volatile sig_atomic_t timed_out;
static void on_alarm(int sig) {
  (void)sig;
  timed_out = 1;
}

static void set_seg(struct kvm_segment *s, unsigned long long *v) {
  s->selector = v[0];
  s->base = v[1];
  s->limit = v[2];
  s->type = v[3];
  s->present = v[4];
  s->dpl = v[5];
  s->db = v[6];
  s->s = v[7];
  s->l = v[8];
  s->g = v[9];
  s->unusable = !v[4];
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: kvm-run MEM STATE [TIMEOUT]\n");
    return 120;
  }
  int timeout = argc > 3 ? atoi(argv[3]) : 20;
  int bridge = argc > 4 && !strcmp(argv[4], "--bridge");
  int memfd = open(argv[1], O_RDONLY);
  if (memfd < 0) die("mem");
  struct stat st;
  fstat(memfd, &st);
  size_t memsize = st.st_size;
  void *mem = mmap(NULL, memsize, PROT_READ | PROT_WRITE, MAP_PRIVATE, memfd, 0);
  if (mem == MAP_FAILED) die("mmap");

  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) die("/dev/kvm");
  int vm = ioctl(kvm, KVM_CREATE_VM, 0);
  if (vm < 0) die("KVM_CREATE_VM");
  ioctl(vm, KVM_SET_TSS_ADDR, 0xfffbd000);
  if (ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0) die("KVM_CREATE_IRQCHIP");
  struct kvm_pit_config pit = {.flags = 0};
  if (ioctl(vm, KVM_CREATE_PIT2, &pit) < 0) die("KVM_CREATE_PIT2");
  struct kvm_userspace_memory_region region = {
      .slot = 0, .guest_phys_addr = 0, .memory_size = memsize, .userspace_addr = (uint64_t)mem};
  if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) die("KVM_SET_USER_MEMORY_REGION");
  int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
  if (vcpu < 0) die("KVM_CREATE_VCPU");

  /* Give the guest the host's supported CPUID, as every VMM does. */
  struct {
    struct kvm_cpuid2 c;
    struct kvm_cpuid_entry2 e[512];
  } cpuid = {.c.nent = 512};
  if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, &cpuid) == 0) {
    /* Hide XSAVE/AVX: where KVM emulates ring 0 (kvm_pvm) its instruction emulator lacks them. */
    for (uint32_t i = 0; i < cpuid.c.nent; i++) {
      struct kvm_cpuid_entry2 *e = &cpuid.e[i];
      if (e->function == 1) e->ecx &= ~((1u << 26) | (1u << 27) | (1u << 28) | (1u << 12) | (1u << 29));
      if (e->function == 7 && e->index == 0) e->ebx &= ~((1u << 5) | (1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) | (1u << 30) | (1u << 31));
    }
    if (ioctl(vcpu, KVM_SET_CPUID2, &cpuid) < 0) die("KVM_SET_CPUID2");
  } else {
    die("KVM_GET_SUPPORTED_CPUID");
  }

  int runsize = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  struct kvm_run *run = mmap(NULL, runsize, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
  if (run == MAP_FAILED) die("mmap kvm_run");

  struct kvm_regs regs;
  struct kvm_sregs sregs;
  memset(&regs, 0, sizeof regs);
  if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) die("KVM_GET_SREGS");
  FILE *f = fopen(argv[2], "r");
  if (!f) die("state");
  char name[16];
  while (fscanf(f, "%15s", name) == 1) {
    unsigned long long v[10] = {0};
    int n = (!strcmp(name, "gdt") || !strcmp(name, "idt")) ? 2 : (strlen(name) == 2 || !strcmp(name, "ldt")) && strcmp(name, "r8") && strcmp(name, "r9") ? 10 : 1;
    for (int i = 0; i < n; i++)
      if (fscanf(f, "%llu", &v[i]) != 1) die("state value");
#define R(x) else if (!strcmp(name, #x)) regs.x = v[0];
    if (0) {}
    R(rax) R(rbx) R(rcx) R(rdx) R(rsi) R(rdi) R(rsp) R(rbp) R(r8) R(r9) R(r10) R(r11) R(r12) R(r13) R(r14) R(r15)
    R(rip) R(rflags)
    else if (!strcmp(name, "cr0")) sregs.cr0 = v[0];
    else if (!strcmp(name, "cr3")) sregs.cr3 = v[0];
    else if (!strcmp(name, "cr4")) sregs.cr4 = v[0];
    else if (!strcmp(name, "efer")) sregs.efer = v[0];
    else if (!strcmp(name, "gdt")) { sregs.gdt.base = v[0]; sregs.gdt.limit = v[1]; }
    else if (!strcmp(name, "idt")) { sregs.idt.base = v[0]; sregs.idt.limit = v[1]; }
    else if (!strcmp(name, "cs")) set_seg(&sregs.cs, v);
    else if (!strcmp(name, "ds")) set_seg(&sregs.ds, v);
    else if (!strcmp(name, "es")) set_seg(&sregs.es, v);
    else if (!strcmp(name, "fs")) set_seg(&sregs.fs, v);
    else if (!strcmp(name, "gs")) set_seg(&sregs.gs, v);
    else if (!strcmp(name, "ss")) set_seg(&sregs.ss, v);
    else if (!strcmp(name, "tr")) set_seg(&sregs.tr, v);
    else if (!strcmp(name, "ldt")) set_seg(&sregs.ldt, v);
    else { fprintf(stderr, "unknown state field %s\n", name); return 120; }
  }
  fclose(f);
  if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) die("KVM_SET_SREGS");
  if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0) die("KVM_SET_REGS");

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm; /* no SA_RESTART: KVM_RUN returns EINTR */
  sigaction(SIGALRM, &sa, NULL);
  alarm(timeout);
  for (;;) {
    if (ioctl(vcpu, KVM_RUN, 0) < 0) {
      if (errno == EINTR && timed_out) {
        struct kvm_regs r;
        ioctl(vcpu, KVM_GET_REGS, &r);
        fflush(stdout);
        fprintf(stderr, "kvm-run: timeout at rip 0x%llx\n", (unsigned long long)r.rip);
        return 103;
      }
      if (errno == EINTR) continue;
      die("KVM_RUN");
    }
    switch (run->exit_reason) {
    case KVM_EXIT_IO: {
      uint8_t *data = (uint8_t *)run + run->io.data_offset;
      for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size) {
        uint16_t port = run->io.port;
        if (bridge) {
          uint32_t v = 0;
          if (run->io.direction == KVM_EXIT_IO_OUT) {
            memcpy(&v, data, run->io.size);
            printf("o %u %u %u\n", port, run->io.size, v);
          } else {
            printf("i %u %u\n", port, run->io.size);
          }
          fflush(stdout);
          char line[512];
          if (!fgets(line, sizeof line, stdin)) return 104;
          char *tok = strtok(line, " \n");
          unsigned long long value = tok ? strtoull(tok, NULL, 10) : 0;
          if (run->io.direction == KVM_EXIT_IO_IN) memcpy(data, &value, run->io.size);
          while ((tok = strtok(NULL, " \n"))) {
            if (!strcmp(tok, "q")) {
              tok = strtok(NULL, " \n");
              return tok ? atoi(tok) & 0xff : 0;
            }
            unsigned irq, level;
            if (sscanf(tok, "%u=%u", &irq, &level) == 2) {
              struct kvm_irq_level l = {.irq = irq, .level = level};
              if (ioctl(vm, KVM_IRQ_LINE, &l) < 0) die("KVM_IRQ_LINE");
            }
          }
          continue;
        }
        if (run->io.direction == KVM_EXIT_IO_OUT) {
          if (port == 0x3f8) { putchar(data[0]); }
          else if (port == 0xf4) {
            uint32_t v = 0;
            memcpy(&v, data, run->io.size);
            fflush(stdout);
            return (int)(((uint64_t)v << 1) | 1) & 0xff;
          }
        } else {
          memset(data, 0xff, run->io.size);
          if (port == 0x3fd) data[0] = 0x60; /* LSR: THRE | TEMT */
        }
      }
      break;
    }
    case KVM_EXIT_HLT: fflush(stdout); fprintf(stderr, "kvm-run: HLT\n"); return 100;
    case KVM_EXIT_SHUTDOWN: fflush(stdout); fprintf(stderr, "kvm-run: shutdown (triple fault)\n"); return 101;
    case KVM_EXIT_MMIO: break; /* no MMIO devices: reads see zeros */
    case KVM_EXIT_FAIL_ENTRY:
      fprintf(stderr, "kvm-run: entry failed, reason 0x%llx\n", (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
      return 102;
    case KVM_EXIT_INTERNAL_ERROR:
      fprintf(stderr, "kvm-run: internal error, suberror %u\n", run->internal.suberror);
      return 102;
    default:
      fprintf(stderr, "kvm-run: exit reason %u\n", run->exit_reason);
      return 102;
    }
  }
}
