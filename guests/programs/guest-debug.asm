; Guest debugging and KVM_TRANSLATE (packages/kvm-api/test/run-debug.test.ts). Flat 32-bit
; protected mode, CPL 0, paging off, no IDT; each section starts at a fixed address the test uses.
; 0x1000 steps: mov eax, 1 / mov ebx, 2 / add eax, ebx / OUT 0x10 (al = 3) / INT3 at 0x100e / nop /
;        jmp 0x1100.
; 0x1100 the guest's own debug registers: DR0 := 0x11111111, OUT 0x11 = DR0, OUT 0x12 = DR7,
;        jmp 0x1200.
; 0x1200 a hardware-breakpoint target: mov ecx, 0x77 / OUT 0x13 / jmp 0x1300.
; 0x1300 32-bit paging with CR0.WP: 0-4 MiB identity, supervisor read/write; 0x400000 -> 0x5000
;        user read-only, 0x401000 -> 0x6000 user read/write, 0x402000 not present. OUT 0x14, HLT.
bits 32
org 0x1000
steps:
    mov eax, 1
    mov ebx, 2
    add eax, ebx
    out 0x10, al
    int3
    nop
    jmp drs

    times 0x100 - ($ - $$) db 0x90
drs:
    mov eax, 0x11111111
    mov dr0, eax
    mov eax, dr0
    out 0x11, eax
    mov eax, dr7
    out 0x12, eax
    jmp target

    times 0x200 - ($ - $$) db 0x90
target:
    mov ecx, 0x77
    out 0x13, al
    jmp paging

    times 0x300 - ($ - $$) db 0x90
paging:
    ; PD at 0x20000, page tables at 0x21000 (0-4 MiB) and 0x22000 (4-8 MiB)
    mov edi, 0x20000
    mov ecx, 3 * 1024
    xor eax, eax
    cld
    rep stosd
    mov dword [0x20000], 0x21003       ; PDE 0: P | RW, supervisor
    mov dword [0x20004], 0x22007       ; PDE 1: P | RW | US
    mov edi, 0x21000
    mov eax, 0x003                     ; P | RW
.ident:
    stosd
    add eax, 0x1000
    cmp edi, 0x22000
    jb .ident
    mov dword [0x22000], 0x5005        ; 0x400000 -> 0x5000: P | US (read-only)
    mov dword [0x22004], 0x6007        ; 0x401000 -> 0x6000: P | RW | US
    mov eax, 0x20000
    mov cr3, eax
    mov eax, cr0
    or eax, 0x80010000                 ; PG | WP
    mov cr0, eax
    out 0x14, al
    hlt
