; Real mode: port I/O to userspace and HLT.
; Start: CS = 0 (base 0), IP = 0x1000, flat 64 KiB segments, no irqchip.
; Exits: OUT 0x10 (AL='H'), OUT 0x3f8 word, IN 0x11 (userspace answers), OUT 0x12 echo, HLT.
bits 16
org 0x1000
start:
    mov al, 'H'
    out 0x10, al
    mov dx, 0x3f8
    mov ax, 0x6948          ; "Hi"
    out dx, ax
    in al, 0x11             ; userspace supplies the byte
    mov [result], al
    add al, 1
    out 0x12, al            ; echo + 1
    mov eax, 0x12345678
    out 0x13, eax
    hlt
    mov al, 0xee            ; after the HLT exit, run() continues here
    out 0x14, al
    hlt
result: db 0
