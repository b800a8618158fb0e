//! The x86-64 kernel's signal-frame layout (`struct ucontext`, `struct sigcontext`, the FXSAVE/XSAVE
//! area's software-reserved words), as byte offsets: what a handler reads its registers from, and
//! what `rt_sigreturn` reads them back from on restart. From `arch/x86/include/uapi/asm/sigcontext.h`
//! and `ucontext.h`.

/// `uc_flags`.
pub const UC_FLAGS: usize = 0;
/// `uc_stack.ss_sp`, `ss_flags` (an int), `ss_size`.
pub const UC_STACK_SP: usize = 16;
pub const UC_STACK_FLAGS: usize = 24;
pub const UC_STACK_SIZE: usize = 32;
/// `uc_mcontext`: 23 general registers (r8..r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags,
/// cs/gs/fs/ss, err, trapno, oldmask, cr2), then the `fpstate` pointer and 8 reserved words.
pub const UC_GREGS: usize = 40;
pub const UC_FPSTATE: usize = UC_GREGS + 23 * 8;
/// `uc_sigmask` (the kernel's 8-byte sigset).
pub const UC_SIGMASK: usize = UC_FPSTATE + 8 + 8 * 8;
/// Size of the kernel's `struct ucontext`.
pub const UC_SIZE: usize = UC_SIGMASK + 8;

/// Index of `rsp` and `rip` in the general registers.
pub const REG_RSP: usize = 15;
pub const REG_RIP: usize = 16;

/// `uc_flags` bits: the frame's FP area is an XSAVE area; `ss` was saved; restore it strictly.
pub const UC_FP_XSTATE: u64 = 1;

/// The FXSAVE area is 512 bytes; its software-reserved words (`struct _fpx_sw_bytes`) sit at 464.
pub const FX_SIZE: usize = 512;
pub const SW_MAGIC1: usize = 464;
pub const SW_EXTENDED_SIZE: usize = 468;
pub const SW_XFEATURES: usize = 472;
pub const SW_XSTATE_SIZE: usize = 480;
/// `FP_XSTATE_MAGIC1`, and `FP_XSTATE_MAGIC2` at `fpstate + xstate_size`.
pub const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
pub const FP_XSTATE_MAGIC2: u32 = 0x4650_5845;

/// The length of the FP area of a frame whose first bytes are `fx`: the XSAVE area with its
/// trailing magic word when the frame says it has one, else the bare FXSAVE area.
pub fn fp_area_len(fx: &[u8]) -> usize {
    let word = |at: usize| {
        fx.get(at..at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0, u32::from_le_bytes)
    };
    if word(SW_MAGIC1) == FP_XSTATE_MAGIC1 {
        word(SW_EXTENDED_SIZE) as usize
    } else {
        FX_SIZE
    }
}

/// The XSAVE feature bits an FP area uses (0 for a bare FXSAVE area).
pub fn xfeatures(fp: &[u8]) -> u64 {
    let magic = fp
        .get(SW_MAGIC1..SW_MAGIC1 + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes);
    if magic != Some(FP_XSTATE_MAGIC1) {
        return 0;
    }
    fp.get(SW_XFEATURES..SW_XFEATURES + 8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_le_bytes)
}
