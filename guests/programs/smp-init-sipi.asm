; Two vCPUs, in-kernel irqchip. The BSP (flat 32-bit at 0x1000) sends INIT then SIPI with vector
; 0x08 to APIC id 1 through the LAPIC ICR (SDM Vol. 3 10.4.4.1 / 11.6.1): OUT 0x10 = 0x01 after
; the INIT, OUT 0x10 = 0xb5 after the SIPI.
; The AP wakes in real mode at CS:IP = 0800:0000 (physical 0x8000) and OUTs 0x10 = 0xa9.
bits 32
org 0x1000
bsp:
    mov dword [0xfee00310], 1 << 24         ; ICR high: destination APIC id 1
    mov dword [0xfee00300], 0x00004500      ; INIT, level assert
    mov al, 0x01                            ; "INIT sent": the VMM lets the AP take it, as the
    out 0x10, al                            ; 10 ms INIT-SIPI delay of the MP spec would
    mov dword [0xfee00300], 0x00004608      ; Start-up, vector 0x08
    mov al, 0xb5
    out 0x10, al
    hlt
    times 0x7000 - ($ - $$) db 0
bits 16
ap:                                         ; physical 0x8000
    mov al, 0xa9
    out 0x10, al
    hlt
