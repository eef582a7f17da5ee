/*
 * tskvm multiboot v1 test kernel. Checks the machine state the Multiboot 0.6.96 spec (section
 * 3.2) requires at entry, prints one line to the 16550 at 0x3f8 and leaves through QEMU's
 * isa-debug-exit device at port 0xf4: the VMM exits with status (value << 1) | 1.
 *   value 0x10 -> exit 33: EAX was 0x2BADB002 and the info structure had a memory map
 *   value 0x11 -> exit 35: EAX was wrong
 *   value 0x12 -> exit 37: info flags lacked mem_* (bit 0) or mmap_* (bit 6)
 * Built twice from this file: as an ELF32 (the loader reads program headers) and, with
 * -DAOUT_KLUDGE, as a flat binary whose header carries the load addresses (flags bit 16).
 */
#define MB_MAGIC 0x1BADB002
#define MB_BOOTLOADER_MAGIC 0x2BADB002
#ifdef AOUT_KLUDGE
#define MB_FLAGS 0x00010003 /* page-align modules, want memory info, address fields valid */
#else
#define MB_FLAGS 0x00000003
#endif
#define COM1 0x3f8
#define LSR_THRE 0x20
#define DEBUG_EXIT 0xf4

        .code32
        .section .text
        .globl _start
        .align 4
mb_header:
        .long MB_MAGIC
        .long MB_FLAGS
        .long -(MB_MAGIC + MB_FLAGS)
#ifdef AOUT_KLUDGE
        .long mb_header          /* header_addr */
        .long _start_of_image    /* load_addr */
        .long _end_of_data       /* load_end_addr */
        .long _end_of_bss        /* bss_end_addr */
        .long _start             /* entry_addr */
#endif

_start:
        mov $stack_top, %esp
        cmp $MB_BOOTLOADER_MAGIC, %eax
        jne bad_magic
        mov %ebx, %edi                 /* EDI = multiboot_info */
        mov (%edi), %eax               /* flags */
        and $0x41, %eax
        cmp $0x41, %eax
        jne bad_info

        mov $msg_ok, %esi
        call puts
        /* bit 2: cmdline valid -> echo it */
        testl $0x4, (%edi)
        jz 1f
        mov $msg_cmd, %esi
        call puts
        mov 16(%edi), %esi
        call puts
1:      mov $msg_nl, %esi
        call puts
        mov $0x10, %al
        jmp leave

bad_magic:
        mov $msg_magic, %esi
        call puts
        mov $0x11, %al
        jmp leave
bad_info:
        mov $msg_info, %esi
        call puts
        mov $0x12, %al
leave:
        mov $DEBUG_EXIT, %dx
        outb %al, %dx
        /* Without the debug-exit device: stop here. */
2:      cli
        hlt
        jmp 2b

/* puts: write the NUL-terminated string at ESI to COM1, polling LSR.THRE. */
puts:
        push %eax
        push %edx
3:      lodsb
        test %al, %al
        jz 5f
        mov %al, %ah
        mov $COM1 + 5, %dx
4:      inb %dx, %al
        test $LSR_THRE, %al
        jz 4b
        mov $COM1, %dx
        mov %ah, %al
        outb %al, %dx
        jmp 3b
5:      pop %edx
        pop %eax
        ret

        .section .data
msg_ok:    .asciz "tskvm multiboot-test: ok"
msg_cmd:   .asciz " cmdline="
msg_nl:    .asciz "\n"
msg_magic: .asciz "tskvm multiboot-test: bad magic in EAX\n"
msg_info:  .asciz "tskvm multiboot-test: info lacks mem or mmap\n"

        .section .bss
        .align 16
stack:  .skip 4096
stack_top:
