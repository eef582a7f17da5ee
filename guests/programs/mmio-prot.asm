; 32-bit protected mode (flat segments set by the test), paging off:
; an MMIO store, an MMIO load answered by userspace, then the value echoed to a port.
; Exits: MMIO write 0xd0000000 (4 bytes 0xcafef00d), MMIO read 0xd0000004 (4),
;        OUT 0x20 dword (the value read + 1), MMIO write byte 0xd0000008, HLT.
bits 32
org 0x1000
start:
    mov dword [0xd0000000], 0xcafef00d
    mov eax, [0xd0000004]
    inc eax
    out 0x20, eax
    mov byte [0xd0000008], 0x5a
    hlt
