; Flat 32-bit protected mode: coalesced PIO and MMIO (KVM_REGISTER_COALESCED_MMIO zones at ports
; 0x70-0x71 and 0xd0000000-0xd0000fff). Writes into the zones complete in the kernel and wait in the
; ring; the exits: OUT 0x10, IN 0x70 and the MMIO load (reads of a zone still exit), HLT. Userspace
; answers IN 0x70 and the load; the OUT of the loaded byte is coalesced again.
bits 32
org 0x1000
    mov al, 0x11
    out 0x70, al
    mov al, 0x22
    out 0x71, al
    mov dword [0xd0000008], 0x11223344
    mov word [0xd000000c], 0xbeef
    mov al, 0x33
    out 0x10, al            ; exits: the ring holds the four writes above
    in al, 0x70
    mov eax, [0xd0000008]
    out 0x70, al
    hlt
