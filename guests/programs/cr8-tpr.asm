; 64-bit mode (the test sets up long mode with the first 2 MiB identity-mapped), no IDT: CR8 as
; the guest sees it against kvm_run.cr8 (no in-kernel LAPIC) or the LAPIC TPR (irqchip).
; Exits: OUT 0x10 = CR8 at entry (kvm_run.cr8 as userspace left it, or TPR[7:4]), OUT 0x11 = 9
; after MOV CR8 <- 9, [no LAPIC] SET_TPR for MOV CR8 <- 3 (a lower TPR), OUT 0x12 = CR8 read
; back (3, or what userspace wrote to kvm_run.cr8 at the SET_TPR exit), then MOV CR8 <- 0x10
; (reserved bit): #GP, which without an IDT is a triple fault, SHUTDOWN; CR8 stays as it was.
bits 64
org 0x1000
start:
    mov rax, cr8
    out 0x10, al
    mov eax, 9
    mov cr8, rax
    out 0x11, al
    mov eax, 3
    mov cr8, rax
    mov rax, cr8
    out 0x12, al
    mov eax, 0x10
    mov cr8, rax
    hlt
