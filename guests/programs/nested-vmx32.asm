; Nested VMX from a 32-bit guest hypervisor: L1 in 32-bit protected mode with 32-bit paging (one
; 4 MiB page) runs a 32-bit L2 (SDM Vol. 3C ch. 24-31: 32-bit operands, VMWRITE of a 64-bit field's
; high half, a host without "host address-space size").
; Start: flat 32-bit protected mode at 0x1000, paging off, nested VMX exposed. Case byte at 0x0ff0.
; Ports as nested-vmx.asm: 0x11 exit reason, 0x12 exit qualification (read by VMREAD to memory),
; 0x15 exception vector in L1, 0x18 = 0xdd done, 0x1f failure step.
;   0: 0x11=10 (CPUID), 0x11=30, 0x12=0x00800040 (OUT 0x80, AL), 0x11=12 (HLT), 0x18=dd, HLT
;   1: VMPTRLD with its operand past ES's limit (0xfff): 0x15=13 (#GP), HLT
bits 32
org 0x1000

CASE        equ 0x0ff0
PD          equ 0x10000
VMXON_PA    equ 0x20000
VMCS_PA     equ 0x21000
L2_STACK    equ 0x24000
HOST_STACK  equ 0x30000
RESULT      equ 0x9000
SAVE        equ 0x9100

start:
    lgdt [gdtr]
    lidt [idtr]
    jmp 0x08:.cs
.cs:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov fs, ax
    mov gs, ax
    mov esp, 0x8000
    mov dword [PD], 0x83            ; 4 MiB page at 0: present, writable, PS
    mov eax, cr4
    or eax, 0x2010                  ; PSE, VMXE
    mov cr4, eax
    mov eax, PD
    mov cr3, eax
    mov eax, cr0
    or eax, 0x80000020              ; PG, NE
    mov cr0, eax
    mov ecx, 0x3a                   ; IA32_FEATURE_CONTROL: lock, VMX outside SMX
    rdmsr
    test al, 1
    jnz .locked
    or eax, 5
    wrmsr
.locked:
    mov ecx, 0x480
    rdmsr
    and eax, 0x7fffffff
    mov [VMXON_PA], eax
    mov [VMCS_PA], eax
    vmxon [vmxon_ptr]
    jbe fail
    cmp byte [CASE], 1
    jne .go
    mov ax, 0x20                    ; data segment, limit 0xfff
    mov es, ax
    vmptrld [es:0x1ffc]             ; 8 bytes from 0x1ffc: past the limit
    hlt
.go:
    vmclear [vmcs_ptr]
    jbe fail
    vmptrld [vmcs_ptr]
    jbe fail
    ; controls from the TRUE capability MSRs: 32-bit host and guest
    mov ecx, 0x48d
    xor ebx, ebx
    mov edx, 0x4000                 ; PIN_BASED_VM_EXEC_CONTROL
    call control
    mov ecx, 0x48e
    mov ebx, (1 << 7) | (1 << 24)   ; HLT exiting, unconditional I/O exiting
    mov edx, 0x4002
    call control
    mov ecx, 0x48f
    xor ebx, ebx
    mov edx, 0x400c                 ; VM_EXIT_CONTROLS
    call control
    mov ecx, 0x490
    xor ebx, ebx
    mov edx, 0x4012                 ; VM_ENTRY_CONTROLS
    call control
    ; control registers of L1 for host and guest
    mov eax, cr0
    mov edx, 0x6c00
    vmwrite edx, eax
    mov edx, 0x6800
    vmwrite edx, eax
    mov eax, cr3
    mov edx, 0x6c02
    vmwrite edx, eax
    mov edx, 0x6802
    vmwrite edx, eax
    mov eax, cr4
    mov edx, 0x6c04
    vmwrite edx, eax
    mov edx, 0x6804
    vmwrite edx, eax
    ; the rest from the table: (encoding, value) pairs
    mov esi, fields
.field:
    mov edx, [esi]
    cmp edx, -1
    je .launch
    vmwrite edx, [esi + 4]
    jbe fail
    add esi, 8
    jmp .field
.launch:
    vmlaunch
    mov al, 0xe0
    jmp fail

; ecx = TRUE control MSR, ebx = wanted, edx = field: VMWRITE (wanted | allowed-0) & allowed-1
control:
    push edx
    rdmsr
    or eax, ebx
    and eax, edx
    pop edx
    vmwrite edx, eax
    jbe fail
    ret

l2:
    xor eax, eax
    cpuid
    mov [RESULT], ebx
    mov [RESULT + 4], edx
    mov [RESULT + 8], ecx
    mov al, 0x42
    out 0x80, al
    hlt

handler:
    mov [SAVE], eax
    mov [SAVE + 4], ecx
    mov [SAVE + 8], edx
    mov [SAVE + 12], ebx
    mov esi, 0x4402
    vmread edi, esi
    mov eax, edi
    out 0x11, eax
    cmp edi, 10
    je .cpuid
    cmp edi, 30
    je .io
    cmp edi, 12
    je .hlt
    mov al, 0xee
    jmp fail
.cpuid:
    mov eax, [SAVE]
    mov ecx, [SAVE + 4]
    cpuid
    mov [SAVE], eax
    mov [SAVE + 4], ecx
    mov [SAVE + 8], edx
    mov [SAVE + 12], ebx
    jmp .advance
.io:
    mov esi, 0x6400
    vmread [RESULT + 16], esi       ; 32-bit memory destination
    mov eax, [RESULT + 16]
    out 0x12, eax
    jmp .advance
.hlt:
    vmxoff
    mov al, 0xdd
    out 0x18, al
    hlt
.advance:
    mov esi, 0x440c
    vmread eax, esi
    mov esi, 0x681e
    vmread edx, esi
    add edx, eax
    vmwrite esi, edx
    mov eax, [SAVE]
    mov ecx, [SAVE + 4]
    mov edx, [SAVE + 8]
    mov ebx, [SAVE + 12]
    vmresume
    mov al, 0xe5
fail:
    out 0x1f, al
    hlt

gp_handler:
    mov al, 13
    out 0x15, al
    hlt

align 4
fields:
    dd 0x0c00, 0x10, 0x0c02, 0x08, 0x0c04, 0x10, 0x0c06, 0x10   ; host ES CS SS DS
    dd 0x0c08, 0x10, 0x0c0a, 0x10, 0x0c0c, 0x18                 ; host FS GS TR
    dd 0x6c0a, tss, 0x6c0c, gdt, 0x6c0e, idt                    ; host TR, GDTR, IDTR bases
    dd 0x6c14, HOST_STACK, 0x6c16, handler
    dd 0x2800, -1, 0x2801, -1                                   ; link pointer, both halves
    dd 0x681a, 0x400, 0x681c, L2_STACK, 0x681e, l2, 0x6820, 2   ; DR7 RSP RIP RFLAGS
    dd 0x0802, 0x08, 0x4802, -1, 0x4816, 0xc09b                 ; CS: 32-bit code
    dd 0x0800, 0x10, 0x4800, -1, 0x4814, 0xc093                 ; ES
    dd 0x0804, 0x10, 0x4804, -1, 0x4818, 0xc093                 ; SS
    dd 0x0806, 0x10, 0x4806, -1, 0x481a, 0xc093                 ; DS
    dd 0x0808, 0x10, 0x4808, -1, 0x481c, 0xc093                 ; FS
    dd 0x080a, 0x10, 0x480a, -1, 0x481e, 0xc093                 ; GS
    dd 0x4820, 0x10000                                          ; LDTR unusable
    dd 0x080e, 0x18, 0x6814, tss, 0x480e, 0x67, 0x4822, 0x8b    ; TR: busy TSS
    dd 0x6816, gdt, 0x4810, gdt_end - gdt - 1, 0x6818, idt, 0x4812, idt_end - idt - 1
    dd -1

align 8
vmxon_ptr: dq VMXON_PA
vmcs_ptr:  dq VMCS_PA

align 8
gdt:
    dq 0
    dq 0x00cf9a000000ffff          ; 0x08: 32-bit code
    dq 0x00cf92000000ffff          ; 0x10: data
    dw 0x67, tss, 0x8b00, 0        ; 0x18: 32-bit TSS (busy)
    dq 0x000092000000ffff & ~0xf000 ; 0x20: data, byte-granular limit 0xfff
gdt_end:
gdtr:
    dw gdt_end - gdt - 1
    dd gdt

align 8
idt:
    times 13 dq 0
    dw gp_handler, 0x08, 0x8e00, 0 ; 13: 32-bit interrupt gate
idt_end:
idtr:
    dw idt_end - idt - 1
    dd idt

align 16
tss:
    times 0x68 db 0
