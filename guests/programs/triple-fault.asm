; Real mode: an empty IVT limit makes INT3 unreachable: #GP, then #DF, then a triple fault.
; Exits: OUT 0x10, SHUTDOWN.
bits 16
org 0x1000
start:
    mov al, 1
    out 0x10, al
    lidt [idt0]
    int3
    hlt
idt0: dw 0
      dd 0
