//! The classic-BPF program builder: instructions and labels, resolved into jumps or refused.
//!
//! Pure code for the seccomp filter of [`crate::filter`]: no `unsafe` (`#[forbid(unsafe_code)]` on its
//! `mod` in lib.rs).

/// Classic BPF, as `struct sock_filter`.
#[repr(C)]
#[derive(Copy, Clone)]
pub(crate) struct Insn {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

pub(crate) const LD_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
pub(crate) const JEQ: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
pub(crate) const JGE: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
pub(crate) const JGT: u16 = 0x25; // BPF_JMP | BPF_JGT | BPF_K
pub(crate) const JSET: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
pub(crate) const RET: u16 = 0x06; // BPF_RET | BPF_K
pub(crate) const SECCOMP_RET_ALLOW: u32 = linux_raw_sys::ptrace::SECCOMP_RET_ALLOW;
pub(crate) const SECCOMP_RET_TRAP: u32 = linux_raw_sys::ptrace::SECCOMP_RET_TRAP;
/// Offsets in `struct seccomp_data`.
pub(crate) const DATA_NR: u32 = 0;
pub(crate) const DATA_ARCH: u32 = 4;
pub(crate) const DATA_IP_HIGH: u32 = 12;
pub(crate) const fn data_arg_low(i: u32) -> u32 {
    16 + 8 * i
}

pub(crate) const MAX_INSNS: usize = 400;
/// Labels a program may place: the caller's fixed ones (below the `reserved` count given to
/// [`Program::new`]), then those made by [`Program::new_label`].
const MAX_LABELS: usize = 192;
const UNPLACED: usize = usize::MAX;

/// Where a conditional jump goes.
#[derive(Copy, Clone)]
pub(crate) enum To {
    Next,
    /// Skip this many instructions.
    Skip(u8),
    Trap,
    Allow,
    /// A label placed with [`Program::label`] (forward jumps only).
    Label(usize),
}

/// A straight-line filter program with two exits at its end: `TRAP` then `ALLOW`. A program that
/// overflows, uses an unplaced label, jumps backwards or further than 8 bits allow is refused by
/// [`Program::finish`].
pub(crate) struct Program {
    insns: [Insn; MAX_INSNS],
    targets: [(To, To); MAX_INSNS],
    len: usize,
    labels: [usize; MAX_LABELS],
    next_label: usize,
    overflow: bool,
}

impl Program {
    /// An empty program whose labels below `reserved` are the caller's fixed ones.
    pub(crate) const fn new(reserved: usize) -> Self {
        Self {
            insns: [Insn {
                code: 0,
                jt: 0,
                jf: 0,
                k: 0,
            }; MAX_INSNS],
            targets: [(To::Next, To::Next); MAX_INSNS],
            len: 0,
            labels: [UNPLACED; MAX_LABELS],
            next_label: reserved,
            overflow: false,
        }
    }

    /// A fresh label id, to be placed later.
    pub(crate) fn new_label(&mut self) -> usize {
        let id = self.next_label;
        self.next_label += 1;
        self.overflow |= id >= MAX_LABELS;
        id
    }

    pub(crate) fn label(&mut self, id: usize) {
        match self.labels.get_mut(id) {
            Some(slot) => *slot = self.len,
            None => self.overflow = true,
        }
    }

    pub(crate) fn emit(&mut self, code: u16, k: u32, jt: To, jf: To) {
        if let (Some(insn), Some(targets)) =
            (self.insns.get_mut(self.len), self.targets.get_mut(self.len))
        {
            *insn = Insn {
                code,
                jt: 0,
                jf: 0,
                k,
            };
            *targets = (jt, jf);
            self.len += 1;
        } else {
            self.overflow = true;
        }
    }

    /// Marks the program as one that cannot be built (a caller's limit was exceeded).
    pub(crate) fn fail(&mut self) {
        self.overflow = true;
    }

    pub(crate) fn load(&mut self, offset: u32) {
        self.emit(LD_ABS, offset, To::Next, To::Next);
    }

    /// Appends the two exits and turns the symbolic jump targets into offsets; empty if the program
    /// cannot be built as written.
    pub(crate) fn finish(&mut self) -> &[Insn] {
        let trap = self.len;
        let labels = self.labels;
        let mut bad = self.overflow || trap + 2 > MAX_INSNS;
        for (i, (insn, targets)) in self
            .insns
            .iter_mut()
            .zip(self.targets)
            .enumerate()
            .take(trap)
        {
            let mut resolve = |t: To| -> u8 {
                let offset = match t {
                    To::Next => Some(0),
                    To::Skip(n) => Some(usize::from(n)),
                    To::Trap => Some(trap - i - 1),
                    To::Allow => Some(trap - i),
                    To::Label(id) => labels
                        .get(id)
                        .filter(|&&at| at != UNPLACED && at > i)
                        .map(|&at| at - i - 1),
                };
                match offset {
                    Some(offset) if offset <= usize::from(u8::MAX) => offset as u8,
                    _ => {
                        bad = true;
                        0
                    }
                }
            };
            insn.jt = resolve(targets.0);
            insn.jf = resolve(targets.1);
        }
        if bad {
            // A jump that does not fit in 8 bits (or goes nowhere): refuse to build a filter that would
            // misbehave.
            self.len = 0;
            return &[];
        }
        self.emit(RET, SECCOMP_RET_TRAP, To::Next, To::Next);
        self.emit(RET, SECCOMP_RET_ALLOW, To::Next, To::Next);
        self.insns.get(..self.len).unwrap_or(&[])
    }
}

/// What one run of a filter did.
#[cfg(test)]
pub(crate) struct Walk {
    pub(crate) ret: u32,
    /// Instructions executed.
    pub(crate) steps: usize,
    /// Whether it loaded anything but the architecture and the call number (which makes the
    /// kernel's action cache give up on the number).
    pub(crate) loaded_more: bool,
}

/// Runs a classic-BPF filter over `struct seccomp_data` (only the instructions the builder emits).
#[cfg(test)]
pub(crate) fn walk(insns: &[Insn], nr: u32, ip: u64, args: [u64; 6]) -> Walk {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_ne_bytes());
    data[4..8].copy_from_slice(&linux_raw_sys::ptrace::AUDIT_ARCH_X86_64.to_ne_bytes());
    data[8..16].copy_from_slice(&ip.to_ne_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
    }
    let (mut pc, mut acc) = (0usize, 0u32);
    let (mut steps, mut loaded_more) = (0, false);
    loop {
        let insn = insns[pc];
        let k = insn.k;
        pc += 1;
        steps += 1;
        match insn.code {
            LD_ABS => {
                loaded_more |= k != DATA_NR && k != DATA_ARCH;
                acc = u32::from_ne_bytes(data[k as usize..k as usize + 4].try_into().unwrap())
            }
            RET => {
                return Walk {
                    ret: k,
                    steps,
                    loaded_more,
                }
            }
            JEQ | JGE | JGT | JSET => {
                let taken = match insn.code {
                    JEQ => acc == k,
                    JGE => acc >= k,
                    JSET => acc & k != 0,
                    _ => acc > k,
                };
                pc += usize::from(if taken { insn.jt } else { insn.jf });
            }
            other => panic!("unexpected BPF code {other:#x}"),
        }
    }
}

/// The return value of one run of a filter.
#[cfg(test)]
pub(crate) fn run(insns: &[Insn], nr: u32, ip: u64, args: [u64; 6]) -> u32 {
    walk(insns, nr, ip, args).ret
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builder_refuses_far_and_dangling_jumps() {
        let mut program = Program::new(0);
        program.emit(JEQ, 0, To::Trap, To::Next);
        for _ in 0..300 {
            program.load(DATA_NR);
        }
        assert!(
            program.finish().is_empty(),
            "a 300-instruction jump was built"
        );
        let mut program = Program::new(0);
        program.emit(JEQ, 0, To::Label(0), To::Next);
        assert!(
            program.finish().is_empty(),
            "a jump to an unplaced label was built"
        );
        let mut program = Program::new(0);
        for _ in 0..MAX_INSNS {
            program.load(DATA_NR);
        }
        assert!(
            program.finish().is_empty(),
            "an overflowing program was built"
        );
    }
}
