//! What a libc would otherwise provide: the ELF entry point, the memory
//! functions the compiler calls, and the panic handler. Only in the real
//! binary (build.rs passes `--cfg harden_stepdown_bin`), not in unit tests.

use core::ffi::c_char;

#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    ".text",
    ".globl _start",
    "_start:",
    "xor ebp, ebp",
    "mov rdi, rsp",
    "and rsp, -16",
    "call {entry}",
    "ud2",
    entry = sym entry,
);

#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    ".text",
    ".globl _start",
    "_start:",
    "mov x29, xzr",
    "mov x30, xzr",
    "mov x0, sp",
    "bl {entry}",
    "brk #0",
    entry = sym entry,
);

#[cfg(target_arch = "arm")]
core::arch::global_asm!(
    ".text",
    ".globl _start",
    "_start:",
    "mov fp, #0",
    "mov lr, #0",
    "mov r0, sp",
    "bic sp, sp, #7",
    "bl {entry}",
    ".inst 0xe7f000f0", // udf: permanently undefined, ARMv5 included
    entry = sym entry,
);

/// The kernel's initial stack: argc, argv[0..argc], NULL, envp..., NULL.
unsafe extern "C" fn entry(sp: *const usize) -> ! {
    let argc = *sp;
    let argv = sp.add(1) as *const *const c_char;
    let envp = argv.add(argc + 1);
    let mut envc = 0;
    while !(*envp.add(envc)).is_null() {
        envc += 1;
    }
    crate::start(
        core::slice::from_raw_parts(argv, argc),
        core::slice::from_raw_parts(envp, envc),
    )
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // Fail closed: whatever went wrong, the command is not run.
    let _ = crate::sys::write_all(2, b"harden-stepdown: internal error\n");
    crate::sys::exit(1)
}

// The memory functions the compiler emits calls to. In assembly, so that
// LLVM cannot turn a byte loop back into a call to the function itself; they
// only copy small things (a passwd line at most), so simple loops suffice.
#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    ".text",
    ".globl memcpy",
    "memcpy:",
    "mov rax, rdi",
    "mov rcx, rdx",
    "rep movsb",
    "ret",
    ".globl memmove",
    "memmove:",
    "mov rax, rdi",
    "mov rcx, rdx",
    "cmp rdi, rsi",
    "jbe .Lforward",
    "lea rsi, [rsi + rcx - 1]",
    "lea rdi, [rdi + rcx - 1]",
    "std",
    "rep movsb",
    "cld",
    "ret",
    ".Lforward:",
    "rep movsb",
    "ret",
    ".globl memset",
    "memset:",
    "mov r8, rdi",
    "mov eax, esi",
    "mov rcx, rdx",
    "rep stosb",
    "mov rax, r8",
    "ret",
    ".globl memcmp",
    ".globl bcmp",
    "memcmp:",
    "bcmp:",
    "xor eax, eax",
    ".Lcmp:",
    "test rdx, rdx",
    "jz .Lcmp_done",
    "movzx eax, byte ptr [rdi]",
    "movzx ecx, byte ptr [rsi]",
    "sub eax, ecx",
    "jnz .Lcmp_done",
    "inc rdi",
    "inc rsi",
    "dec rdx",
    "jmp .Lcmp",
    ".Lcmp_done:",
    "ret",
    ".globl strlen",
    "strlen:",
    "mov rax, rdi",
    ".Lstrlen:",
    "cmp byte ptr [rax], 0",
    "je .Lstrlen_done",
    "inc rax",
    "jmp .Lstrlen",
    ".Lstrlen_done:",
    "sub rax, rdi",
    "ret",
);

#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    ".text",
    ".globl memcpy",
    "memcpy:",
    "mov x3, x0",
    ".Lcopy:",
    "cbz x2, .Lcopy_done",
    "ldrb w4, [x1], #1",
    "strb w4, [x3], #1",
    "sub x2, x2, #1",
    "b .Lcopy",
    ".Lcopy_done:",
    "ret",
    ".globl memmove",
    "memmove:",
    "cmp x0, x1",
    "b.ls memcpy",
    "add x1, x1, x2",
    "add x3, x0, x2",
    ".Lback:",
    "cbz x2, .Lback_done",
    "ldrb w4, [x1, #-1]!",
    "strb w4, [x3, #-1]!",
    "sub x2, x2, #1",
    "b .Lback",
    ".Lback_done:",
    "ret",
    ".globl memset",
    "memset:",
    "mov x3, x0",
    ".Lset:",
    "cbz x2, .Lset_done",
    "strb w1, [x3], #1",
    "sub x2, x2, #1",
    "b .Lset",
    ".Lset_done:",
    "ret",
    ".globl memcmp",
    ".globl bcmp",
    "memcmp:",
    "bcmp:",
    "mov w3, #0",
    ".Lcmp:",
    "cbz x2, .Lcmp_done",
    "ldrb w3, [x0], #1",
    "ldrb w4, [x1], #1",
    "subs w3, w3, w4",
    "b.ne .Lcmp_done",
    "sub x2, x2, #1",
    "b .Lcmp",
    ".Lcmp_done:",
    "mov w0, w3",
    "ret",
    ".globl strlen",
    "strlen:",
    "mov x1, x0",
    ".Lstrlen:",
    "ldrb w2, [x1], #1",
    "cbnz w2, .Lstrlen",
    "sub x0, x1, x0",
    "sub x0, x0, #1",
    "ret",
);

// 32-bit arm (ARMv5TE and later, ARM state).
#[cfg(target_arch = "arm")]
core::arch::global_asm!(
    ".text",
    ".globl memcpy",
    "memcpy:",
    "mov r3, r0",
    ".Lcopy:",
    "subs r2, r2, #1",
    "ldrbhs r12, [r1], #1",
    "strbhs r12, [r3], #1",
    "bhs .Lcopy",
    "bx lr",
    ".globl memmove",
    "memmove:",
    "cmp r0, r1",
    "bls memcpy",
    "add r1, r1, r2",
    "add r3, r0, r2",
    ".Lback:",
    "subs r2, r2, #1",
    "ldrbhs r12, [r1, #-1]!",
    "strbhs r12, [r3, #-1]!",
    "bhs .Lback",
    "bx lr",
    ".globl memset",
    "memset:",
    "mov r3, r0",
    ".Lset:",
    "subs r2, r2, #1",
    "strbhs r1, [r3], #1",
    "bhs .Lset",
    "bx lr",
    ".globl memcmp",
    ".globl bcmp",
    "memcmp:",
    "bcmp:",
    ".Lcmp:",
    "subs r2, r2, #1",
    "movlo r0, #0",
    "bxlo lr",
    "ldrb r3, [r0], #1",
    "ldrb r12, [r1], #1",
    "subs r3, r3, r12",
    "beq .Lcmp",
    "mov r0, r3",
    "bx lr",
    ".globl strlen",
    "strlen:",
    "mov r1, r0",
    ".Lstrlen:",
    "ldrb r2, [r1], #1",
    "cmp r2, #0",
    "bne .Lstrlen",
    "sub r0, r1, r0",
    "sub r0, r0, #1",
    "bx lr",
);
