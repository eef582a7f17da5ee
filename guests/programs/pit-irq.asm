; Real mode, in-kernel irqchip + PIT: the 8259A is initialised (vector base 0x20), the PIT
; counts in mode 2, IRQ0 reaches the IVT handler three times (each OUT 0x11 = count), then
; OUT 0x10 = 3. The LAPIC is turned off through IA32_APIC_BASE so the PIC drives INTR directly.
bits 16
org 0x1000
start:
    cli
    xor ax, ax
    mov ds, ax
    mov ss, ax
    mov sp, 0x8000
    mov word [0x20*4], irq0
    mov word [0x20*4+2], 0
    mov ecx, 0x1b               ; IA32_APIC_BASE: clear the global enable (bit 11)
    rdmsr
    and ax, 0xf7ff
    wrmsr
    mov al, 0x11                ; ICW1: edge, cascade, ICW4
    out 0x20, al
    mov al, 0x20                ; ICW2: vectors 0x20-0x27
    out 0x21, al
    mov al, 0x04                ; ICW3: slave on IR2
    out 0x21, al
    mov al, 0x01                ; ICW4: 8086 mode
    out 0x21, al
    mov al, 0xfe                ; OCW1: only IRQ0
    out 0x21, al
    mov al, 0x34                ; PIT channel 0, lobyte/hibyte, mode 2
    out 0x43, al
    mov al, 0xa9                ; 1193 (~1 ms)
    out 0x40, al
    mov al, 0x04
    out 0x40, al
    sti
idle:
    hlt
    cmp byte [count], 3
    jb idle
    cli
    mov al, [count]
    out 0x10, al
    hlt
irq0:
    push ax
    inc byte [count]
    mov al, [count]
    out 0x11, al
    mov al, 0x20                ; OCW2: non-specific EOI
    out 0x20, al
    pop ax
    iret
count: db 0
