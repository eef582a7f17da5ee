; 32-bit protected mode with its own GDT and IDT: the LAPIC timer (periodic, vector 0x40,
; in-kernel LAPIC reached by MMIO at 0xfee00000) interrupts three times; each handler run
; OUTs the count to 0x11 and EOIs; then OUT 0x10 = 3.
bits 32
org 0x1000
start:
    lgdt [gdtr]
    jmp 0x08:reload
reload:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov esp, 0x8000
    lidt [idtr]
    mov dword [0xfee000f0], 0x1ff       ; SVR: APIC software-enabled, spurious vector 0xff
    mov dword [0xfee003e0], 0x0b        ; divide by 1
    mov dword [0xfee00320], 0x20040     ; LVT timer: periodic, vector 0x40
    mov dword [0xfee00380], 300000      ; initial count
    sti
.wait:
    hlt
    cmp dword [count], 3
    jb .wait
    cli
    mov dword [0xfee00380], 0           ; stop the timer
    mov eax, [count]
    out 0x10, al
    hlt
handler:
    inc dword [count]
    mov eax, [count]
    out 0x11, al
    mov dword [0xfee000b0], 0           ; EOI
    iretd
count: dd 0

align 8
gdt:
    dq 0
    dq 0x00cf9a000000ffff
    dq 0x00cf92000000ffff
gdtr:
    dw gdtr - gdt - 1
    dd gdt
idt:
    times 0x40 dq 0
    dw (handler - $$ + 0x1000) & 0xffff
    dw 0x08
    db 0, 0x8e
    dw (handler - $$ + 0x1000) >> 16
idt_end:
idtr:
    dw idt_end - idt - 1
    dd idt
