; CPUID leaf 0DH, OSXSAVE and OSPKE following CR4 and XCR0, and PKRU through KVM_GET/SET_XSAVE
; (packages/kvm-api/test/run-xsave.test.ts). Flat 32-bit protected mode, CPL 0, paging off, a stack.
; `report` sends CPUID.1:ECX (OUT 0x20), CPUID.(7,0):ECX (0x21), CPUID.(0DH,0):EBX (0x22) and
; CPUID.(0DH,1):EBX (0x23): once as reset left CR4 and XCR0, once with CR4.OSXSAVE | PKE and
; XCR0 = x87 | SSE | PKRU. Then WRPKRU 0CH and OUT 0x24 (userspace reads or rewrites the XSAVE
; image there), RDPKRU and OUT 0x25 (the PKRU the guest sees), HLT.
bits 32
org 0x1000
start:
    call report
    mov eax, cr4
    or eax, (1 << 18) | (1 << 22)      ; CR4.OSXSAVE | CR4.PKE
    mov cr4, eax
    xor ecx, ecx
    xor edx, edx
    mov eax, 0x203                     ; XCR0: x87 | SSE | PKRU
    xsetbv
    call report
    xor ecx, ecx
    xor edx, edx
    mov eax, 0xc
    db 0x0f, 0x01, 0xef                ; WRPKRU (spelled out for older nasm)
    out 0x24, eax
    xor ecx, ecx
    db 0x0f, 0x01, 0xee                ; RDPKRU
    out 0x25, eax
    hlt

report:
    mov eax, 1
    cpuid
    mov eax, ecx
    out 0x20, eax
    mov eax, 7
    xor ecx, ecx
    cpuid
    mov eax, ecx
    out 0x21, eax
    mov eax, 0xd
    xor ecx, ecx
    cpuid
    mov eax, ebx
    out 0x22, eax
    mov eax, 0xd
    mov ecx, 1
    cpuid
    mov eax, ebx
    out 0x23, eax
    ret
