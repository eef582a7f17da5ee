; Real mode -> 32-bit protected mode -> 64-bit long mode (SDM Vol. 3 10.9 and 10.8.5), with
; 4-level paging built by the guest; then an MMIO store through guest paging + EPT.
; Start: real mode at 0:0x1000. Exits: OUT 0x10 = 0x16, 0x32, 0x64, MMIO write 0xd0000010, HLT.
bits 16
org 0x1000
start:
    cli
    mov al, 0x16
    out 0x10, al
    lgdt [gdtr]
    mov eax, cr0
    or eax, 1
    mov cr0, eax
    jmp 0x08:pm32

bits 32
pm32:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov esp, 0x8000
    mov al, 0x32
    out 0x10, al
    ; page tables at 0x10000 (PML4), 0x11000 (PDPT), 0x12000 and 0x13000 (PDs)
    mov edi, 0x10000
    mov ecx, 0x1000
    xor eax, eax
    cld
    rep stosd
    mov dword [0x10000], 0x11003
    mov dword [0x11000], 0x12003
    mov dword [0x11000 + 3*8], 0x13003
    mov dword [0x12000], 0x000083
    mov dword [0x12008], 0x200083
    mov dword [0x13000 + 0x80*8], 0xd0000083
    mov eax, cr4
    or eax, 0x20
    mov cr4, eax
    mov eax, 0x10000
    mov cr3, eax
    mov ecx, 0xc0000080
    rdmsr
    or eax, 0x100
    wrmsr
    mov eax, cr0
    or eax, 0x80000000
    mov cr0, eax
    jmp 0x18:lm64

bits 64
lm64:
    mov al, 0x64
    out 0x10, al
    mov rax, 0x1122334455667788
    mov [0x9000], rax
    mov rdi, 0xd0000010                ; a disp32 would sign-extend in 64-bit mode
    mov dword [rdi], 0x64646464
    mov rbx, [0x9000]
    hlt

align 8
gdt:
    dq 0
    dq 0x00cf9a000000ffff          ; 0x08: 32-bit code
    dq 0x00cf92000000ffff          ; 0x10: data
    dq 0x00af9a000000ffff          ; 0x18: 64-bit code
gdtr:
    dw gdtr - gdt - 1
    dd gdt
