/*
 * /init of the bundled tskvm guest: mounts proc, sysfs and devtmpfs, prints the boot marker that
 * tests and bench/boot.ts wait for, then hands pid 1 to busybox init (inittab: a shell on the
 * console, respawned, and poweroff/reboot that work).
 *
 * Raw system calls and no libc (built by build.sh with gcc -static -nostdlib), so the kernel maps
 * a few pages and runs it at once. A shell script doing the same (busybox sh forking and
 * exec'ing `mount` three times) cost 2.2 M more guest instructions per boot, ~6% of a boot to
 * the marker (counted with `tskvm --icount 0`).
 */
#define SYS_write 1
#define SYS_exit 60
#define SYS_execve 59
#define SYS_mount 165

static long sys5(long n, long a, long b, long c, long d, long e) {
  long r;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  __asm__ volatile("syscall"
                   : "=a"(r)
                   : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
                   : "rcx", "r11", "memory");
  return r;
}

static void say(const char *s) {
  long n = 0;
  while (s[n]) n++;
  sys5(SYS_write, 2, (long)s, n, 0, 0);
}

static void mnt(const char *src, const char *dir, const char *type) {
  if (sys5(SYS_mount, (long)src, (long)dir, (long)type, 0, 0) < 0) {
    say("init: cannot mount ");
    say(dir);
    say("\n");
  }
}

void _start(void) {
  mnt("proc", "/proc", "proc");
  mnt("sysfs", "/sys", "sysfs");
  mnt("devtmpfs", "/dev", "devtmpfs");
  static const char marker[] = "TSKVM-BOOT-OK\n";
  sys5(SYS_write, 1, (long)marker, sizeof marker - 1, 0, 0);
  static char *const argv[] = {"/sbin/init", 0};
  static char *const envp[] = {"PATH=/bin:/sbin:/usr/bin:/usr/sbin", "HOME=/", "TERM=linux", 0};
  sys5(SYS_execve, (long)"/sbin/init", (long)argv, (long)envp, 0, 0);
  say("init: cannot exec /sbin/init\n");
  sys5(SYS_exit, 1, 0, 0, 0, 0);
}
