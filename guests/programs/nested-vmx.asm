; Nested VMX: a guest hypervisor (L1) that runs its own guest (L2) with VMX (SDM Vol. 3C ch. 24-31).
; Start: real mode at 0:0x1000, nested VMX exposed (CPUID.1:ECX.VMX). The byte at 0x0ff0 picks a case.
; L1 enters long mode (identity-mapped 4 MiB), sets CR0.NE, IA32_FEATURE_CONTROL (lock + VMX outside
; SMX) and CR4.VMXE, reads the revision id from IA32_VMX_BASIC, VMXON, VMCLEAR, VMPTRLD, VMWRITEs a
; whole VMCS (controls adjusted by the TRUE capability MSRs, 64-bit host and guest) and VMLAUNCHes.
; L2: CPUID, OUT 0x19 (not in L1's I/O bitmap: straight to L0's userspace), OUT 0x80 (in the bitmap),
; REP OUTSB of "ab" to 0x81 (in the bitmap) and to 0x19 (not), HLT. L1's exit handler reports each
; exit reason on port 0x11, emulates CPUID, reports the I/O exit qualification (0x12) and L2's AL or
; the OUTSB byte it emulates (0x13), steps L2's RIP by the exit instruction length, VMRESUMEs.
;
; Ports: 0x11 exit reason (4), 0x12 exit qualification (4), 0x13 L2's AL (1), 0x14 guest-physical
; address (4), 0x15 exception vector in L1 (1, then HLT), 0x16 RFLAGS & 0x8d5 after a VMX
; instruction (4), 0x17 VM-instruction error (4), 0x18 = 0xdd done (then HLT), 0x1f unexpected
; failure step (1, then HLT).
;
; Cases and their exits:
;   0 full run: 0x11=10, 0x19=77, 0x11=30, 0x12=0x00800040, 0x13=42, then twice 0x11=30,
;     0x12=0x00810030, 0x13=61/62; 0x19=61, 0x19=62, 0x11=12, 0x18=dd, HLT
;   1 VMXON with CR4.VMXE=0: 0x15=6 (#UD), HLT
;   2 VMPTRLD of a region with a bad revision id: 0x16=0x40 (ZF), 0x17=11, HLT
;   3 after L2's HLT: VMLAUNCH of the launched VMCS: 0x16=0x40, 0x17=4; VMCLEAR, VMPTRLD, VMRESUME:
;     0x16=0x40, 0x17=5; 0x18=dd, HLT (exits of case 0 before that)
;   4 reserved pin-based control bits set: 0x16=0x40, 0x17=7, HLT
;   5 64-bit host with HOST_CR4.PAE=0: 0x16=0x40, 0x17=8, HLT
;   6 GUEST_RFLAGS bit 1 clear: VM-entry failure: 0x11=0x80000021, 0x18=dd, HLT
;   7 VMWRITE the dword count at 0x7000 of (field, value) qword pairs from 0x7008, then VMLAUNCH
;   8 (irqchip + PIT) external-interrupt exiting with acknowledge on exit, L2 spins: 0x11=1,
;     0x12=0x80000020 (vector 0x20 from the PIT through the 8259A), 0x18=dd
;   9 EPT for L2: its store to GPA 6 MiB lands at L1's 2 MiB; its read of GPA 0x200010 is an EPT
;     violation: 0x11=48, 0x12=qualification, 0x14=0x200010 (guest-physical address), 0x18=dd
;  10 L2 clears CR4.VMXE: #GP in L2 (its handler, L1's code: 0x15=13), HLT in the handler exits to
;     L1: 0x11=12, 0x18=dd
;  11 VMPTRLD with its operand on an unmapped page: 0x15=14 (#PF in L1, CR2 = 0x800000), HLT
;  12 VMPTRLD with a non-canonical operand: 0x15=13 (#GP), HLT
;  13 VMPTRST in compatibility mode: 0x15=6 (#UD), HLT
;  14 L2 runs the bytes at 0x50000 with every exception intercepted: each exit reaches L1's handler
;  15 case 0 with L1 owning CR0.TS (mask and read shadow 1) while L2's CR0.TS is 0
;  16 L1 intercepts #PF; L2 reads 0x812345 (unmapped): 0x11=0, 0x12=0x812345, 0x14=0x80000b0e, 0x18=dd
; Case 0 also leaves VMREAD-to-memory (CPUID's length) at 0x9010 and VMPTRST's pointer at 0x9018.
bits 16
org 0x1000

CASE        equ 0x0ff0
VMXON_PA    equ 0x20000
VMCS_A      equ 0x21000
VMCS_B      equ 0x22000
L2_STACK    equ 0x24000
IOBITMAP_A  equ 0x25000
IOBITMAP_B  equ 0x26000
L1_STACK    equ 0x28000
HOST_STACK  equ 0x30000
RESULT      equ 0x9000
FUZZ        equ 0x7000
EPT_PML4    equ 0x40000
L2_CODE     equ 0x50000
SAVE        equ 0x9100

start:
    cli
    lgdt [gdtr]
    mov eax, cr0
    or eax, 1
    mov cr0, eax
    jmp 0x08:pm32

bits 32
pm32:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov esp, 0x8000
    ; PML4 0x10000, PDPT 0x11000, PD 0x12000: 2 x 2 MiB identity
    mov edi, 0x10000
    mov ecx, 0xc00
    xor eax, eax
    cld
    rep stosd
    mov dword [0x10000], 0x11003
    mov dword [0x11000], 0x12003
    mov dword [0x12000], 0x000083
    mov dword [0x12008], 0x200083
    mov dword [0x12018], 0x600083   ; 6 MiB: not RAM for L1, L2's EPT maps it (case 9)
    mov eax, cr4
    or eax, 0x20
    mov cr4, eax
    mov eax, 0x10000
    mov cr3, eax
    mov ecx, 0xc0000080
    rdmsr
    or eax, 0x100
    wrmsr
    mov eax, cr0
    or eax, 0x80000000
    mov cr0, eax
    jmp 0x18:lm64

bits 64

%macro CHECK 1                     ; VMsucceed, else report the step
    jbe fail_%1
%endmacro

%macro VMW 2                       ; VMWRITE field %1 <- %2
    mov rax, %2
    mov edx, %1
    vmwrite rdx, rax
    jbe fail_vmwrite
%endmacro

%macro VMWR 2                      ; VMWRITE field %1 <- register %2
    mov edx, %1
    vmwrite rdx, %2
    jbe fail_vmwrite
%endmacro

lm64:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov rsp, L1_STACK
    lidt [idtr]
    mov rax, cr0
    or eax, 0x20                    ; CR0.NE: IA32_VMX_CR0_FIXED0
    mov cr0, rax
    mov ecx, 0x3a                   ; IA32_FEATURE_CONTROL
    rdmsr
    test al, 1
    jnz .locked
    or eax, 5                       ; lock, VMX outside SMX
    wrmsr
.locked:
    cmp byte [CASE], 1
    je .vmxon                       ; case 1: VMXON with CR4.VMXE = 0 -> #UD
    mov rax, cr4
    bts eax, 13                     ; CR4.VMXE
    mov cr4, rax
.vmxon:
    mov ecx, 0x480                  ; IA32_VMX_BASIC: revision id in bits 30:0
    rdmsr
    and eax, 0x7fffffff
    mov [VMXON_PA], eax
    mov [VMCS_A], eax
    mov [VMCS_B], eax
    vmxon [vmxon_ptr]
    CHECK vmxon
    cmp byte [CASE], 11
    jne .c12
    vmptrld [0x800000]              ; case 11: operand on a page L1's paging does not map: #PF
.c12:
    cmp byte [CASE], 12
    jne .c0
    mov rax, 0x8000000000000000
    vmptrld [rax]                   ; case 12: non-canonical operand: #GP(0)
.c0:
    vmclear [vmcs_a_ptr]
    CHECK vmclear
    vmptrld [vmcs_a_ptr]
    CHECK vmptrld
    cmp byte [CASE], 2
    jne .build
    mov dword [VMCS_B], 0x12345     ; case 2: not our revision id
    vmptrld [vmcs_b_ptr]
    call report
    hlt
.build:
    call build_vmcs
    vmptrst [RESULT + 24]           ; the current VMCS pointer, to memory
    cmp byte [CASE], 13
    jne .c4
    push 0x08
    push compat
    retfq                           ; case 13: to compatibility mode (CS 0x08: 32-bit code)
.c4:
    cmp byte [CASE], 4
    jne .c5
    VMW 0x4000, 0xffffffff          ; case 4: PIN_BASED_VM_EXEC_CONTROL, reserved bits set
.c5:
    cmp byte [CASE], 5
    jne .c6
    mov rax, cr4
    btr eax, 5
    VMWR 0x6c04, rax                ; case 5: HOST_CR4 without PAE for a 64-bit host
.c6:
    cmp byte [CASE], 6
    jne .c7
    VMW 0x6820, 0                   ; case 6: GUEST_RFLAGS bit 1 clear
.c7:
    cmp byte [CASE], 7
    jne .c8
    mov rbx, FUZZ + 8               ; case 7: VMWRITE the (field, value) pairs the test put at FUZZ
    mov r9d, [FUZZ]
.fuzz:
    test r9d, r9d
    jz .launch
    mov rdx, [rbx]
    mov rax, [rbx + 8]
    vmwrite rdx, rax                ; a VMfail (no such field, read-only) is fine here
    add rbx, 16
    dec r9d
    jmp .fuzz
.c8:
    cmp byte [CASE], 8
    jne .c9
    mov al, 0x11                    ; case 8: 8259A ICW1-ICW4, vectors 0x20-0x27, only IRQ0 unmasked
    out 0x20, al
    mov al, 0x20
    out 0x21, al
    mov al, 4
    out 0x21, al
    mov al, 1
    out 0x21, al
    mov al, 0xfe
    out 0x21, al
    mov al, 0x34                    ; PIT channel 0, mode 2, count 0x400
    out 0x43, al
    xor al, al
    out 0x40, al
    mov al, 4
    out 0x40, al
    mov ecx, 0x48d
    mov r8d, 1                      ; external-interrupt exiting
    call adjust
    VMWR 0x4000, rax
    mov ecx, 0x48f
    mov r8d, (1 << 9) | (1 << 15)   ; host address-space size, acknowledge interrupt on exit
    call adjust
    VMWR 0x400c, rax
    VMW 0x681e, l2_spin
.c9:
    cmp byte [CASE], 9
    jne .c10
    ; case 9: EPT for L2 at 0x40000: GPA 0-2 MiB identity, 2-4 MiB not present, 6-8 MiB -> 2 MiB
    mov edi, EPT_PML4
    mov ecx, 0xc00
    xor eax, eax
    rep stosd
    mov dword [EPT_PML4], EPT_PML4 + 0x1007
    mov dword [EPT_PML4 + 0x1000], EPT_PML4 + 0x2007
    mov dword [EPT_PML4 + 0x2000], 0x0000b7        ; 2 MiB page, WB, RWX
    mov dword [EPT_PML4 + 0x2000 + 3 * 8], 0x2000b7
    mov ecx, 0x48e
    mov r8d, (1 << 7) | (1 << 25) | (1 << 31)      ; + activate secondary controls
    call adjust
    VMWR 0x4002, rax
    mov ecx, 0x48b
    mov r8d, 1 << 1                                ; enable EPT
    call adjust
    VMWR 0x401e, rax
    VMW 0x201a, EPT_PML4 | (3 << 3) | 6            ; EPTP: 4 levels, WB
    VMW 0x681e, l2_ept
.c10:
    cmp byte [CASE], 10
    jne .c14
    VMW 0x681e, l2_vmxe             ; case 10
.c14:
    cmp byte [CASE], 14
    jne .c15
    VMW 0x681e, L2_CODE             ; case 14: L2 runs whatever the test put at L2_CODE,
    VMW 0x4004, 0xffffffff          ; every exception exits to L1
.c15:
    cmp byte [CASE], 15
    jne .c16
    VMW 0x6000, 8                   ; case 15: L1 owns CR0.TS (guest/host mask) and shows L2 TS = 1
    VMW 0x6004, 8
.c16:
    cmp byte [CASE], 16
    jne .launch
    VMW 0x681e, l2_pf               ; case 16: L1 intercepts #PF
    VMW 0x4004, 1 << 14
.launch:
    vmlaunch
    call report                     ; VMfail: flags and error
    hlt

; RFLAGS of the last VMX instruction to 0x16, the VM-instruction error to 0x17.
report:
    pushfq
    pop rax
    and eax, 0x8d5
    out 0x16, eax
    mov esi, 0x4400                 ; VM_INSTRUCTION_ERROR
    vmread rax, rsi
    out 0x17, eax
    ret

build_vmcs:
    ; I/O bitmaps: port 0x80 exits, port 0x19 does not
    mov edi, IOBITMAP_A
    mov ecx, 0x800
    xor eax, eax
    rep stosd
    mov byte [IOBITMAP_A + 0x80 / 8], 3  ; ports 0x80 and 0x81
    ; controls = (wanted | allowed-0) & allowed-1 of the TRUE capability MSRs
    mov ecx, 0x48d
    xor r8d, r8d
    call adjust
    VMWR 0x4000, rax                ; PIN_BASED_VM_EXEC_CONTROL
    mov ecx, 0x48e
    mov r8d, (1 << 7) | (1 << 25)   ; HLT exiting, use I/O bitmaps
    call adjust
    VMWR 0x4002, rax                ; CPU_BASED_VM_EXEC_CONTROL
    mov ecx, 0x48f
    mov r8d, 1 << 9                 ; host address-space size
    call adjust
    VMWR 0x400c, rax                ; VM_EXIT_CONTROLS
    mov ecx, 0x490
    mov r8d, 1 << 9                 ; IA-32e mode guest
    call adjust
    VMWR 0x4012, rax                ; VM_ENTRY_CONTROLS
    VMW 0x2000, IOBITMAP_A
    VMW 0x2002, IOBITMAP_B
    VMW 0x4004, 0                   ; exception bitmap
    VMW 0x2800, -1                  ; VMCS link pointer
    ; host state: L1 itself
    mov rax, cr0
    VMWR 0x6c00, rax
    mov rax, cr3
    VMWR 0x6c02, rax
    mov rax, cr4
    VMWR 0x6c04, rax
    VMW 0x0c00, 0x10                ; ES
    VMW 0x0c02, 0x18                ; CS
    VMW 0x0c04, 0x10                ; SS
    VMW 0x0c06, 0x10                ; DS
    VMW 0x0c08, 0x10                ; FS
    VMW 0x0c0a, 0x10                ; GS
    VMW 0x0c0c, 0x20                ; TR
    VMW 0x6c0a, tss                 ; TR base
    VMW 0x6c0c, gdt                 ; GDTR base
    VMW 0x6c0e, idt                 ; IDTR base
    VMW 0x6c14, HOST_STACK
    VMW 0x6c16, exit_handler
    ; guest state: flat 64-bit ring 0 on L1's page tables
    mov rax, cr0
    VMWR 0x6800, rax
    mov rax, cr3
    VMWR 0x6802, rax
    mov rax, cr4
    VMWR 0x6804, rax
    VMW 0x681a, 0x400               ; DR7
    mov qword [SAVE + 64], L2_STACK
    mov edx, 0x681c                 ; GUEST_RSP from a memory operand
    vmwrite rdx, [SAVE + 64]
    jbe fail_vmwrite
    VMW 0x681e, l2_entry
    VMW 0x6820, 2                   ; RFLAGS
    VMW 0x0802, 0x18                ; CS selector, limit, access rights
    VMW 0x4802, 0xffffffff
    VMW 0x4816, 0xa09b
    mov ebx, 0                      ; ES, SS, DS, FS, GS: selector 0x800 + 2i, limit 0x4800 + 2i,
.seg:                               ; access rights 0x4814 + 2i (i = 0, 2, 3, 4, 5)
    cmp ebx, 1
    je .next
    lea edx, [0x800 + rbx * 2]
    mov eax, 0x10
    vmwrite rdx, rax
    jbe fail_vmwrite
    lea edx, [0x4800 + rbx * 2]
    mov eax, 0xffffffff
    vmwrite rdx, rax
    jbe fail_vmwrite
    lea edx, [0x4814 + rbx * 2]
    mov eax, 0xc093
    vmwrite rdx, rax
    jbe fail_vmwrite
.next:
    inc ebx
    cmp ebx, 6
    jb .seg
    VMW 0x4820, 0x10000             ; LDTR unusable
    VMW 0x080e, 0x20                ; TR: busy 64-bit TSS
    VMW 0x6814, tss
    VMW 0x480e, 0x67
    VMW 0x4822, 0x8b
    VMW 0x6816, gdt
    VMW 0x4810, gdt_end - gdt - 1
    VMW 0x6818, idt
    VMW 0x4812, idt_end - idt - 1
    ret

; ecx = TRUE control MSR, r8d = wanted controls -> rax
adjust:
    rdmsr
    or eax, r8d
    and eax, edx
    ret

; ---- L2 ----
l2_entry:
    xor eax, eax
    cpuid                           ; always exits to L1
    mov [RESULT], ebx
    mov [RESULT + 4], edx
    mov [RESULT + 8], ecx
    mov al, 0x77
    out 0x19, al                    ; not in the bitmap: L0 handles it (userspace exit)
    mov al, 0x42
    out 0x80, al                    ; in the bitmap: exit to L1
    mov esi, msg
    mov ecx, 2
    mov dx, 0x81
    rep outsb                       ; in the bitmap: one exit to L1 per iteration
    mov esi, msg
    mov ecx, 2
    mov dx, 0x19
    rep outsb                       ; not in the bitmap: L0 emulates it
    mov [RESULT + 12], ecx
    hlt                             ; HLT exiting: exit to L1
    jmp $
msg: db 0x61, 0x62
bits 32
compat:
    vmptrst [RESULT + 32]           ; #UD in compatibility mode (SDM 31.3)
    hlt
bits 64
l2_spin:
    jmp l2_spin                     ; case 8: L2 spins with RFLAGS.IF = 0
l2_ept:                             ; case 9: through L1's EPT
    mov dword [0x600000], 0x600dcafe    ; L2 GPA 6 MiB = L1 GPA 2 MiB
    mov eax, [0x200010]             ; not present in L1's EPT: EPT violation to L1
    hlt
l2_pf:                              ; case 16: a read of an unmapped linear address
    mov eax, [0x812345]
    hlt
l2_vmxe:                            ; case 10: CR4.VMXE is fixed to 1 in VMX non-root operation
    mov rax, cr4
    btr eax, 13
    mov cr4, rax                    ; #GP in L2 (L1's IDT: port 0x15), then its HLT exits to L1
    hlt

; ---- L1's VM-exit handler (HOST_RIP) ----
exit_handler:
    mov [SAVE], rax
    mov [SAVE + 8], rcx
    mov [SAVE + 16], rdx
    mov [SAVE + 24], rbx
    mov [SAVE + 32], rsi
    mov [SAVE + 40], rdi
    mov esi, 0x4402                 ; VM_EXIT_REASON
    vmread rdi, rsi
    mov eax, edi
    out 0x11, eax
    bt edi, 31
    jc done                         ; VM-entry failure
    cmp edi, 10
    je .cpuid
    cmp edi, 30
    je .io
    cmp edi, 12
    je .hlt
    cmp edi, 1
    je .intr
    cmp edi, 48
    je .ept
    test edi, edi
    jz .exc
    mov al, 0xee
    out 0x1f, al
    hlt
.cpuid:                             ; CPUID on L2's behalf: its EAX/ECX in, EAX-EDX out
    mov esi, 0x440c
    vmread [RESULT + 16], rsi       ; the exit instruction length, to memory
    mov rax, [SAVE]
    mov rcx, [SAVE + 8]
    cpuid
    mov [SAVE], rax
    mov [SAVE + 8], rcx
    mov [SAVE + 16], rdx
    mov [SAVE + 24], rbx
    jmp .advance
.io:
    mov esi, 0x6400                 ; EXIT_QUALIFICATION
    vmread rdi, rsi
    mov eax, edi
    out 0x12, eax
    test edi, 0x10                  ; string I/O?
    jnz .outs
    mov al, [SAVE]
    out 0x13, al
    jmp .advance
.outs:                              ; one OUTSB iteration on L2's behalf (DF = 0, 64-bit RSI)
    mov rsi, [SAVE + 32]
    mov al, [rsi]
    out 0x13, al
    inc qword [SAVE + 32]
    dec qword [SAVE + 8]
    jnz .resume                     ; RCX not 0: L2 re-executes the REP OUTSB
    jmp .advance
.intr:                              ; external interrupt: report the interruption information
    mov esi, 0x4404                 ; VM_EXIT_INTR_INFO
    vmread rdi, rsi
    mov eax, edi
    out 0x12, eax
    jmp done
.exc:                               ; exception: qualification (#PF: linear address), interruption info
    mov esi, 0x6400
    vmread rdi, rsi
    mov eax, edi
    out 0x12, eax
    mov esi, 0x4404                 ; VM_EXIT_INTR_INFO
    vmread rdi, rsi
    mov eax, edi
    out 0x14, eax
    jmp done
.ept:                               ; EPT violation: qualification and guest-physical address
    mov esi, 0x6400
    vmread rdi, rsi
    mov eax, edi
    out 0x12, eax
    mov esi, 0x2400                 ; GUEST_PHYSICAL_ADDRESS
    vmread rdi, rsi
    mov eax, edi
    out 0x14, eax
    jmp done
.hlt:
    cmp byte [CASE], 3
    je case3
    vmclear [vmcs_a_ptr]
    CHECK vmclear2
    vmxoff
    CHECK vmxoff
    jmp done
.advance:
    mov esi, 0x440c                 ; VM_EXIT_INSTRUCTION_LEN
    vmread rax, rsi
    mov esi, 0x681e                 ; GUEST_RIP
    vmread rdx, rsi
    add rdx, rax
    vmwrite rsi, rdx
    jbe fail_vmwrite
.resume:
    mov rax, [SAVE]
    mov rcx, [SAVE + 8]
    mov rdx, [SAVE + 16]
    mov rbx, [SAVE + 24]
    mov rsi, [SAVE + 32]
    mov rdi, [SAVE + 40]
    vmresume
    mov al, 0xe5                    ; VMRESUME failed
    out 0x1f, al
    hlt

case3:
    vmlaunch                        ; launched VMCS: VMfailValid(4)
    call report
    vmclear [vmcs_a_ptr]
    vmptrld [vmcs_a_ptr]
    vmresume                        ; clear VMCS: VMfailValid(5)
    call report
done:
    mov al, 0xdd
    out 0x18, al
    hlt

fail_vmxon:    mov al, 1
               jmp fail
fail_vmclear:  mov al, 2
               jmp fail
fail_vmptrld:  mov al, 3
               jmp fail
fail_vmclear2: mov al, 4
               jmp fail
fail_vmxoff:   mov al, 5
               jmp fail
fail_vmwrite:  mov al, 6
fail:
    out 0x1f, al
    hlt

ud_handler:
    mov al, 6
    out 0x15, al
    hlt
gp_handler:
    mov al, 13
    out 0x15, al
    hlt
pf_handler:
    mov al, 14
    out 0x15, al
    hlt

align 8
vmxon_ptr:  dq VMXON_PA
vmcs_a_ptr: dq VMCS_A
vmcs_b_ptr: dq VMCS_B

align 8
gdt:
    dq 0
    dq 0x00cf9a000000ffff          ; 0x08: 32-bit code
    dq 0x00cf92000000ffff          ; 0x10: data
    dq 0x00af9a000000ffff          ; 0x18: 64-bit code
    dw 0x67, tss, 0x8b00, 0        ; 0x20: 64-bit TSS (busy), base below 64 KiB
    dq 0
gdt_end:
gdtr:
    dw gdt_end - gdt - 1
    dd gdt

%macro GATE 1                      ; 64-bit interrupt gate to a handler below 64 KiB
    dw %1, 0x18, 0x8e00, 0
    dq 0
%endmacro
align 16
idt:
%assign v 0
%rep 32
%if v == 6
    GATE ud_handler
%elif v == 13
    GATE gp_handler
%elif v == 14
    GATE pf_handler
%else
    dq 0, 0
%endif
%assign v v + 1
%endrep
idt_end:
idtr:
    dw idt_end - idt - 1
    dq idt

align 16
tss:
    times 0x68 db 0
