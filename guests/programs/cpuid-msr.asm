; Real mode: CPUID 0x40000000 (the KVM signature leaf, from the vCPU's CPUID2 table), the kvmclock
; MSR written and read back (in-kernel), and RDMSR of an unknown MSR raising #GP(0) into the IVT.
; Exits: OUT 0x10 = EBX of leaf 0x40000000 ("KVMK"), OUT 0x11 = 0x3001, OUT 0x12 = 0x0d, HLT.
bits 16
org 0x1000
start:
    xor ax, ax
    mov ds, ax
    mov word [13*4], gp_handler
    mov word [13*4+2], 0
    mov eax, 0x40000000
    cpuid
    mov eax, ebx
    out 0x10, eax
    mov ecx, 0x4b564d01             ; MSR_KVM_SYSTEM_TIME_NEW: enable, structure at 0x3000
    mov eax, 0x3001
    xor edx, edx
    wrmsr
    xor eax, eax
    rdmsr
    out 0x11, eax
    mov ecx, 0x12345678             ; no such MSR
    rdmsr
    hlt
gp_handler:
    mov al, 0x0d
    out 0x12, al
    hlt
