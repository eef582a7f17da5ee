/*
 * kvmref: runs a flat guest binary on the host's /dev/kvm and prints one line per KVM_RUN exit in
 * the format of packages/kvm-api/test/run-helpers.ts, so the tskvm engine can be compared with
 * real KVM on the same program.
 *
 *   kvmref [-irqchip] [-pit] [-mode real|flat32] [-load ADDR] [-max N] [-stop "LINE"]
 *          [-answer "io 0x11=0x41"]... [-coalesce pio|mmio:ADDR:SIZE]... program.bin
 *
 * Exit lines: "io out 0xPORT SIZE HEXBYTES", "io in 0xPORT SIZE", "mmio write 0xADDR LEN HEX",
 * "mmio read 0xADDR LEN", "hlt", "shutdown", "fail-entry 0xREASON", "internal-error N ...".
 * KVM_EXIT_INTR is not printed. With -coalesce (KVM_REGISTER_COALESCED_MMIO zones), the writes the
 * ring holds after each KVM_RUN come first, one line each: "coalesced pio|mmio 0xADDR LEN HEX".
 * After the last exit: "regs rax=... rbx=... rip=...".
 * Exit status 0 on a completed run, 2 when /dev/kvm cannot be used (the message says why).
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
#include <unistd.h>

#ifndef PAGE_SIZE
#define PAGE_SIZE 4096 /* KVM_COALESCED_MMIO_MAX is defined in terms of it (x86) */
#endif
#define MEM_SIZE (4u << 20)
#define MAX_ANSWERS 32
#define MAX_ZONES 8

static struct kvm_coalesced_mmio_zone zones[MAX_ZONES];
static int nzones;

static struct { char key[64]; uint64_t value; } answers[MAX_ANSWERS];
static int nanswers;

static uint64_t answer_for(const char *key) {
  for (int i = 0; i < nanswers; i++)
    if (strcmp(answers[i].key, key) == 0) return answers[i].value;
  return 0;
}

static int die(const char *what) {
  fprintf(stderr, "kvmref: %s: %s\n", what, strerror(errno));
  return 2;
}

static void hex(char *out, const uint8_t *p, unsigned n) {
  for (unsigned i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", p[i]);
  out[2 * n] = 0;
}

int main(int argc, char **argv) {
  int irqchip = 0, pit = 0, max = 100;
  const char *mode = "real", *stop = NULL, *file = NULL;
  unsigned long load = 0x1000;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-irqchip")) irqchip = 1;
    else if (!strcmp(argv[i], "-pit")) pit = 1;
    else if (!strcmp(argv[i], "-mode") && i + 1 < argc) mode = argv[++i];
    else if (!strcmp(argv[i], "-load") && i + 1 < argc) load = strtoul(argv[++i], NULL, 0);
    else if (!strcmp(argv[i], "-max") && i + 1 < argc) max = atoi(argv[++i]);
    else if (!strcmp(argv[i], "-stop") && i + 1 < argc) stop = argv[++i];
    else if (!strcmp(argv[i], "-answer") && i + 1 < argc && nanswers < MAX_ANSWERS) {
      char *eq = strchr(argv[++i], '=');
      if (!eq) return fprintf(stderr, "kvmref: bad -answer\n"), 1;
      snprintf(answers[nanswers].key, sizeof answers[0].key, "%.*s", (int)(eq - argv[i]), argv[i]);
      answers[nanswers++].value = strtoull(eq + 1, NULL, 0);
    } else if (!strcmp(argv[i], "-coalesce") && i + 1 < argc && nzones < MAX_ZONES) {
      char kind[8];
      unsigned long long addr, size;
      if (sscanf(argv[++i], "%7[a-z]:%lli:%lli", kind, &addr, &size) != 3 || (strcmp(kind, "pio") && strcmp(kind, "mmio")))
        return fprintf(stderr, "kvmref: bad -coalesce\n"), 1;
      zones[nzones].addr = addr;
      zones[nzones].size = (uint32_t)size;
      zones[nzones++].pio = !strcmp(kind, "pio");
    } else file = argv[i];
  }
  if (!file) return fprintf(stderr, "kvmref: no program\n"), 1;

  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) return die("open /dev/kvm");
  int vm = ioctl(kvm, KVM_CREATE_VM, 0);
  if (vm < 0) return die("KVM_CREATE_VM");
  uint8_t *mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return die("mmap");
  FILE *f = fopen(file, "rb");
  if (!f) return die(file);
  size_t n = fread(mem + load, 1, MEM_SIZE - load, f);
  fclose(f);
  if (n == 0) return fprintf(stderr, "kvmref: empty program\n"), 1;
  struct kvm_userspace_memory_region region = {
      .slot = 0, .guest_phys_addr = 0, .memory_size = MEM_SIZE, .userspace_addr = (uintptr_t)mem};
  if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) return die("KVM_SET_USER_MEMORY_REGION");
  ioctl(vm, KVM_SET_TSS_ADDR, 0xfffbd000ul);
  if (irqchip && ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0) return die("KVM_CREATE_IRQCHIP");
  if (pit) {
    struct kvm_pit_config pc = {.flags = 0};
    if (ioctl(vm, KVM_CREATE_PIT2, &pc) < 0) return die("KVM_CREATE_PIT2");
  }
  int ring_page = 0;
  if (nzones > 0) {
    ring_page = ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_COALESCED_MMIO);
    if (ring_page <= 0) return fprintf(stderr, "kvmref: no KVM_CAP_COALESCED_MMIO\n"), 2;
    for (int i = 0; i < nzones; i++)
      if (ioctl(vm, KVM_REGISTER_COALESCED_MMIO, &zones[i]) < 0) return die("KVM_REGISTER_COALESCED_MMIO");
  }
  int cpu = ioctl(vm, KVM_CREATE_VCPU, 0);
  if (cpu < 0) return die("KVM_CREATE_VCPU");
  int runsz = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  struct kvm_run *run = mmap(NULL, runsz, PROT_READ | PROT_WRITE, MAP_SHARED, cpu, 0);
  if (run == MAP_FAILED) return die("mmap kvm_run");

  struct kvm_sregs s;
  if (ioctl(cpu, KVM_GET_SREGS, &s) < 0) return die("KVM_GET_SREGS");
  struct kvm_segment *segs[] = {&s.cs, &s.ds, &s.es, &s.ss, &s.fs, &s.gs};
  if (!strcmp(mode, "flat32")) {
    for (int i = 0; i < 6; i++) {
      struct kvm_segment *g = segs[i];
      g->base = 0;
      g->limit = 0xffffffff;
      g->selector = i == 0 ? 0x08 : 0x10;
      g->type = i == 0 ? 0xb : 3;
      g->present = 1;
      g->dpl = 0;
      g->db = 1;
      g->s = 1;
      g->l = 0;
      g->g = 1;
    }
    s.cr0 = 0x11;
  } else {
    for (int i = 0; i < 6; i++) segs[i]->selector = 0, segs[i]->base = 0;
  }
  if (ioctl(cpu, KVM_SET_SREGS, &s) < 0) return die("KVM_SET_SREGS");
  struct kvm_regs r;
  memset(&r, 0, sizeof r);
  r.rip = load;
  r.rsp = 0x8000;
  r.rflags = 2;
  if (ioctl(cpu, KVM_SET_REGS, &r) < 0) return die("KVM_SET_REGS");

  char line[256], h[64], key[64];
  for (int i = 0; i < max; i++) {
    if (ioctl(cpu, KVM_RUN, 0) < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return die("KVM_RUN");
    }
    if (ring_page > 0) {
      // Drain the ring as QEMU's kvm_flush_coalesced_mmio_buffer() does, before the exit.
      struct kvm_coalesced_mmio_ring *ring = (void *)((uint8_t *)run + ring_page * getpagesize());
      while (ring->first != ring->last) {
        struct kvm_coalesced_mmio *e = &ring->coalesced_mmio[ring->first];
        hex(h, e->data, e->len > 8 ? 8 : e->len);
        printf("coalesced %s 0x%llx %u %s\n", e->pio ? "pio" : "mmio", (unsigned long long)e->phys_addr, e->len, h);
        ring->first = (ring->first + 1) % KVM_COALESCED_MMIO_MAX;
      }
    }
    int done = 0;
    switch (run->exit_reason) {
      case KVM_EXIT_IO: {
        uint8_t *d = (uint8_t *)run + run->io.data_offset;
        unsigned sz = run->io.size * run->io.count;
        if (run->io.direction == KVM_EXIT_IO_OUT) {
          hex(h, d, sz);
          snprintf(line, sizeof line, "io out 0x%x %u %s", run->io.port, run->io.size, h);
        } else {
          snprintf(line, sizeof line, "io in 0x%x %u", run->io.port, run->io.size);
          snprintf(key, sizeof key, "io 0x%x", run->io.port);
          uint64_t v = answer_for(key);
          memcpy(d, &v, sz > 8 ? 8 : sz);
        }
        break;
      }
      case KVM_EXIT_MMIO:
        if (run->mmio.is_write) {
          hex(h, run->mmio.data, run->mmio.len);
          snprintf(line, sizeof line, "mmio write 0x%llx %u %s", (unsigned long long)run->mmio.phys_addr, run->mmio.len, h);
        } else {
          snprintf(line, sizeof line, "mmio read 0x%llx %u", (unsigned long long)run->mmio.phys_addr, run->mmio.len);
          snprintf(key, sizeof key, "mmio 0x%llx", (unsigned long long)run->mmio.phys_addr);
          uint64_t v = answer_for(key);
          memcpy(run->mmio.data, &v, 8);
        }
        break;
      case KVM_EXIT_HLT: strcpy(line, "hlt"); done = 1; break;
      case KVM_EXIT_SHUTDOWN: strcpy(line, "shutdown"); done = 1; break;
      case KVM_EXIT_FAIL_ENTRY:
        snprintf(line, sizeof line, "fail-entry 0x%llx", (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
        done = 1;
        break;
      case KVM_EXIT_INTERNAL_ERROR:
        snprintf(line, sizeof line, "internal-error %u", run->internal.suberror);
        done = 1;
        break;
      case KVM_EXIT_INTR: continue;
      default: snprintf(line, sizeof line, "exit %u", run->exit_reason); done = 1;
    }
    puts(line);
    if (done || (stop && !strcmp(stop, line))) break;
  }
  if (ioctl(cpu, KVM_GET_REGS, &r) < 0) return die("KVM_GET_REGS");
  printf("regs rax=0x%llx rbx=0x%llx rip=0x%llx\n", (unsigned long long)r.rax, (unsigned long long)r.rbx,
         (unsigned long long)r.rip);
  return 0;
}
