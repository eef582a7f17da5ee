; Real mode without an in-kernel irqchip: the userspace-irqchip protocol (request_interrupt_window,
; KVM_EXIT_IRQ_WINDOW_OPEN, KVM_INTERRUPT), an NMI from KVM_NMI, and REP OUTSB to userspace.
; Exits: OUT 0x10=1, OUT 0x10=2, IRQ_WINDOW_OPEN (after STI's shadow), OUT 0x30=0x30 (vector 0x30
; handler), OUT 0x10=3, HLT, [KVM_NMI] OUT 0x22=0x22, OUT 0x10=4, OUT 0xe9 "A" "B" "C", HLT.
bits 16
org 0x1000
start:
    xor ax, ax
    mov ds, ax
    mov es, ax
    mov word [0x30*4], irq30
    mov word [0x30*4+2], 0
    mov word [2*4], nmi
    mov word [2*4+2], 0
    cli
    mov al, 1
    out 0x10, al                ; userspace now asks for an interrupt window
    mov al, 2
    out 0x10, al                ; IF = 0: no window yet
    sti
    mov al, 3                   ; the STI shadow covers this instruction
    out 0x10, al                ; the window opens before this OUT
    hlt
    mov al, 4
    out 0x10, al
    mov si, msg
    mov cx, 3
    mov dx, 0xe9
    cld
    rep outsb
    hlt
irq30:
    push ax
    mov al, 0x30
    out 0x30, al
    pop ax
    iret
nmi:
    push ax
    mov al, 0x22
    out 0x22, al
    pop ax
    iret
msg: db "ABC"
