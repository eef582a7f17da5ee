#!/bin/sh
# Builds the bundled tskvm guests from Debian bookworm packages and writes them beside this script:
#   bzImage          the default kernel (tinyconfig + the options below, LZ4-compressed)
#   bzImage-gpu      the same plus virtio-gpu and the framebuffer console
#   initramfs.cpio   busybox, uncompressed (the kernel spends no instructions inflating it)
#   config-6.1, config-6.1-gpu   the kernel .config files used
#   SHA256SUMS       the manifest that packages/vmm/test/guests.test.ts checks
#   multiboot-test/multiboot-test.elf   our own multiboot v1 test kernel
#
# Needs (Debian 12): linux-source-6.1 busybox-static build-essential bc flex bison libelf-dev
# libssl-dev lz4 cpio.  `sh guests/build.sh --install` runs apt-get for them first.
# CI does not run this script: it uses the committed artifacts.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${TSKVM_GUEST_WORK:-/tmp/tskvm-guest-build}
JOBS=${JOBS:-$(nproc)}
PKGS="linux-source-6.1 busybox-static build-essential bc flex bison libelf-dev libssl-dev lz4 cpio"
# A fixed timestamp makes the kernel and the cpio archive reproducible from the same packages.
export KBUILD_BUILD_TIMESTAMP="2024-01-01 00:00:00 UTC"
export KBUILD_BUILD_USER=tskvm KBUILD_BUILD_HOST=tskvm
EPOCH=1704067200

if [ "${1:-}" = "--install" ]; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $PKGS
fi

SRC_TAR=$(ls /usr/src/linux-source-6.1.tar.* 2>/dev/null | head -n1 || true)
[ -n "$SRC_TAR" ] || { echo "build.sh: /usr/src/linux-source-6.1.tar.* missing: apt-get install linux-source-6.1" >&2; exit 1; }
[ -x /bin/busybox ] || { echo "build.sh: /bin/busybox missing: apt-get install busybox-static" >&2; exit 1; }

mkdir -p "$WORK"
if [ ! -d "$WORK/linux" ]; then
  echo "== unpacking $SRC_TAR"
  rm -rf "$WORK/linux.tmp" && mkdir -p "$WORK/linux.tmp"
  tar -xf "$SRC_TAR" -C "$WORK/linux.tmp" --strip-components=1
  mv "$WORK/linux.tmp" "$WORK/linux"
fi
KSRC="$WORK/linux"

# Options on top of tinyconfig. The issue lists the devices; the rest are what those need:
# BLOCK for virtio-blk/ext2, MULTIUSER so busybox's uid calls work, X86_MPPARSE so Linux reads
# our MP table and drives the IOAPIC and LAPIC (no ACPI: the MP table is the smaller contract),
# SMP for --cpus, BUG so a WARN or BUG is visible in dmesg, and LZ4 instead of tinyconfig's XZ
# (XZ inflation alone costs ~850 M guest instructions per boot, LZ4 ~22 M). A 100 Hz tick that
# stops when the CPU idles (NO_HZ_IDLE, as distribution kernels) instead of tinyconfig's periodic
# 250 Hz: every tick of an emulated CPU is a timer interrupt, its handler and a wake-up of the
# vCPU loop, so an idle shell cost ~15-20% of a host core at 250 Hz and ~3% now.
# Off, besides: what the machine does not have (guests/README.md): PCI and Intel LPSS/MID UARTs,
# the Intel/AMD/VIA hardware RNGs, the uncore/RAPL/cstate PMUs, cpufreq (SCHED_MC_PRIO would select
# it with intel_pstate), PTP/PPS; and one legacy UART registered at boot instead of 4 (COM1 only).
BASE_OPTS="HZ_100 NO_HZ_IDLE 64BIT PRINTK PRINTK_TIME BUG TTY SERIAL_8250 SERIAL_8250_CONSOLE BLK_DEV_INITRD
  BINFMT_ELF BINFMT_SCRIPT PROC_FS PROC_SYSCTL SYSFS DEVTMPFS DEVTMPFS_MOUNT PCI PCI_MSI
  VIRTIO_MENU VIRTIO_PCI VIRTIO_MMIO VIRTIO_MMIO_CMDLINE_DEVICES BLOCK BLK_DEV VIRTIO_BLK
  NET INET UNIX NETDEVICES NET_CORE VIRTIO_NET VIRTIO_BALLOON VIRTIO_CONSOLE HW_RANDOM
  HW_RANDOM_VIRTIO EXT2_FS FUTEX POSIX_TIMERS MULTIUSER HYPERVISOR_GUEST PARAVIRT KVM_GUEST
  X86_MPPARSE SMP KERNEL_LZ4 CRYPTO CRYPTO_MANAGER_DISABLE_TESTS SLAB"
BASE_OFF="HZ_250 HZ_PERIODIC KERNEL_XZ KERNEL_GZIP KERNEL_BZIP2 KERNEL_LZMA KERNEL_LZO KERNEL_ZSTD RANDOMIZE_BASE
  RD_GZIP RD_BZIP2 RD_LZMA RD_XZ RD_LZO RD_LZ4 RD_ZSTD ACPI LEGACY_PTYS SLOB
  IPV6 HID PCIEASPM VT INPUT SERIO
  SERIAL_8250_PCI SERIAL_8250_EXAR SERIAL_8250_LPSS SERIAL_8250_MID SERIAL_8250_PERICOM
  HW_RANDOM_INTEL HW_RANDOM_AMD HW_RANDOM_VIA
  PERF_EVENTS_INTEL_UNCORE PERF_EVENTS_INTEL_RAPL PERF_EVENTS_INTEL_CSTATE
  SCHED_MC_PRIO X86_INTEL_PSTATE CPU_FREQ PTP_1588_CLOCK PPS"
GPU_OPTS="DRM DRM_VIRTIO_GPU DRM_FBDEV_EMULATION FB VT VT_CONSOLE FRAMEBUFFER_CONSOLE"

build_kernel() { # $1 = output dir, $2 = extra options
  out="$1"; extra="$2"
  mkdir -p "$out"
  make -C "$KSRC" O="$out" -s tinyconfig
  # Off first, then on: the gpu kernel's extras turn VT (and through it INPUT) back on.
  for o in $BASE_OFF; do "$KSRC/scripts/config" --file "$out/.config" --disable "$o"; done
  for o in $BASE_OPTS $extra; do "$KSRC/scripts/config" --file "$out/.config" --enable "$o"; done
  "$KSRC/scripts/config" --file "$out/.config" --set-val NR_CPUS 8
  "$KSRC/scripts/config" --file "$out/.config" --set-val SERIAL_8250_RUNTIME_UARTS 1
  make -C "$KSRC" O="$out" -s olddefconfig
  # olddefconfig drops an option whose dependencies are missing: fail loudly instead of shipping
  # a kernel without it.
  for o in $BASE_OPTS $extra; do
    grep -q "^CONFIG_$o=y" "$out/.config" || { echo "build.sh: CONFIG_$o did not stick" >&2; exit 1; }
  done
  echo "== building $out ($(date))"
  make -C "$KSRC" O="$out" -j"$JOBS" bzImage
}

build_kernel "$WORK/out-default" ""
cp "$WORK/out-default/arch/x86/boot/bzImage" "$HERE/bzImage"
cp "$WORK/out-default/.config" "$HERE/config-6.1"

if [ "${TSKVM_SKIP_GPU:-0}" != 1 ]; then
  build_kernel "$WORK/out-gpu" "$GPU_OPTS"
  cp "$WORK/out-gpu/arch/x86/boot/bzImage" "$HERE/bzImage-gpu"
  cp "$WORK/out-gpu/.config" "$HERE/config-6.1-gpu"
fi

# The initramfs: busybox, /init built from initramfs/init.c (raw system calls, no libc), busybox
# init's inittab. gen_init_cpio (built with the kernel) writes it without needing root for /dev
# nodes. Debian's busybox-static runs its applets by name without links (FEATURE_SH_STANDALONE and
# FEATURE_PREFER_APPLETS: the shell, env, xargs...), so only what something executes by path gets
# one: /init's /sbin/init, inittab's cttyhack, sh and reboot, the scripts' #!/bin/sh, poweroff and
# halt. One symlink per applet (268) cost the kernel 4.1 M guest instructions to unpack, 13% of a
# boot to the marker; `busybox --install -s` in the guest makes them all if wanted.
echo "== initramfs"
gcc -Os -static -nostdlib -ffreestanding -fno-stack-protector -fno-asynchronous-unwind-tables -fno-pie -no-pie \
  -Wl,--build-id=none -s -o "$WORK/init" "$HERE/initramfs/init.c"
# gen_init_cpio's -t covers directories and nodes; regular files keep their own mtime, so the files
# from this checkout get the fixed one too (a fresh clone or build would change the cpio otherwise).
cp "$HERE/initramfs/inittab" "$HERE/initramfs/rc.shutdown" "$WORK/"
touch -d "@$EPOCH" "$WORK/init" "$WORK/inittab" "$WORK/rc.shutdown"
LIST="$WORK/initramfs.list"
{
  echo "dir /dev 0755 0 0"
  echo "nod /dev/console 0600 0 0 c 5 1"
  echo "nod /dev/null 0666 0 0 c 1 3"
  for d in /bin /sbin /etc /proc /sys /tmp /root /mnt /usr /usr/bin /usr/sbin; do echo "dir $d 0755 0 0"; done
  echo "file /bin/busybox /bin/busybox 0755 0 0"
  echo "file /init $WORK/init 0755 0 0"
  echo "file /etc/inittab $WORK/inittab 0644 0 0"
  echo "file /etc/rc.shutdown $WORK/rc.shutdown 0755 0 0"
  for applet in bin/cttyhack bin/sh sbin/halt sbin/init sbin/poweroff sbin/reboot; do
    /bin/busybox --list-full | grep -qx "$applet" || { echo "build.sh: busybox has no /$applet" >&2; exit 1; }
    echo "slink /$applet /bin/busybox 0777 0 0"
  done
} > "$LIST"
"$WORK/out-default/usr/gen_init_cpio" -t "$EPOCH" "$LIST" > "$HERE/initramfs.cpio"

echo "== multiboot test kernel"
make -C "$HERE/multiboot-test" -s

cd "$HERE"
sha256sum bzImage bzImage-gpu initramfs.cpio config-6.1 config-6.1-gpu multiboot-test/multiboot-test.elf \
  multiboot-test/multiboot-test-aout.bin \
  2>/dev/null > SHA256SUMS || true
cat SHA256SUMS
du -sh "$HERE"
