//! x86-64 relocation arithmetic: one function from a relocation type and its operands to the bytes stored.
//!
//! Notation of the System V x86-64 psABI (§4.4, "Relocation Types"):
//!
//! | symbol | meaning |
//! |---|---|
//! | A   | the addend (`r_addend`) |
//! | B   | the image's base address (unused: objects are linked at their final address) |
//! | G   | offset of the symbol's GOT slot from the GOT's start |
//! | GOT | address of the GOT |
//! | L   | address of the symbol's PLT entry: here a call stub, or S itself when S is within reach |
//! | P   | address of the field being relocated |
//! | S   | value of the symbol |
//! | Z   | size of the symbol (`st_size`) |
//!
//! | type | no. | field | formula | check |
//! |---|---|---|---|---|
//! | `R_X86_64_NONE`          |  0 | none   | —               | — |
//! | `R_X86_64_64`            |  1 | word64 | S + A           | — |
//! | `R_X86_64_PC32`          |  2 | word32 | S + A - P       | signed 32 |
//! | `R_X86_64_GOT32`         |  3 | word32 | G + A           | signed 32 |
//! | `R_X86_64_PLT32`         |  4 | word32 | L + A - P       | signed 32 |
//! | `R_X86_64_GOTPCREL`      |  9 | word32 | G + GOT + A - P | signed 32 |
//! | `R_X86_64_32`            | 10 | word32 | S + A           | unsigned 32 |
//! | `R_X86_64_32S`           | 11 | word32 | S + A           | signed 32 |
//! | `R_X86_64_PC64`          | 24 | word64 | S + A - P       | — |
//! | `R_X86_64_GOTOFF64`      | 25 | word64 | S + A - GOT     | — |
//! | `R_X86_64_GOTPC32`       | 26 | word32 | GOT + A - P     | signed 32 |
//! | `R_X86_64_GOT64`         | 27 | word64 | G + A           | — |
//! | `R_X86_64_GOTPCREL64`    | 28 | word64 | G + GOT - P + A | — |
//! | `R_X86_64_GOTPC64`       | 29 | word64 | GOT - P + A     | — |
//! | `R_X86_64_GOTPLT64`      | 30 | word64 | G + A           | — |
//! | `R_X86_64_PLTOFF64`      | 31 | word64 | L - GOT + A     | — |
//! | `R_X86_64_SIZE32`        | 32 | word32 | Z + A           | unsigned 32 |
//! | `R_X86_64_SIZE64`        | 33 | word64 | Z + A           | — |
//! | `R_X86_64_GOTPCRELX`     | 41 | word32 | G + GOT + A - P | signed 32 |
//! | `R_X86_64_REX_GOTPCRELX` | 42 | word32 | G + GOT + A - P | signed 32 |
//!
//! `GOTPCRELX` and `REX_GOTPCRELX` are never relaxed: the instruction keeps its GOT load, which is always
//! correct. The thread-local types (16–23, 34–36) are refused as [`Class::ThreadLocal`]; the dynamic-only
//! types (`COPY`, `GLOB_DAT`, `JUMP_SLOT`, `RELATIVE`, `IRELATIVE`) and the 8/16-bit ones, which gcc never
//! emits for C, are [`Class::Unsupported`].

use object::elf::*;

/// What a relocation type needs from the linker before [`compute`] can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// Implemented. `got`: G is used, the symbol needs a GOT slot. `plt`: L is used, a far symbol needs a
    /// call stub. `near`: a 32-bit PC-relative field, so S must be within ±2 GiB of the image.
    Supported { got: bool, plt: bool, near: bool },
    /// A thread-local-storage type.
    ThreadLocal,
    /// Anything else.
    Unsupported,
}

/// Classifies `r_type`.
pub(crate) fn class(r_type: u32) -> Class {
    let ok = |got, plt, near| Class::Supported { got, plt, near };
    match r_type {
        R_X86_64_NONE | R_X86_64_64 | R_X86_64_32 | R_X86_64_32S | R_X86_64_PC64
        | R_X86_64_GOTOFF64 => ok(false, false, false),
        R_X86_64_GOTPC32 | R_X86_64_GOTPC64 | R_X86_64_SIZE32 | R_X86_64_SIZE64 => {
            ok(false, false, false)
        }
        R_X86_64_PC32 => ok(false, false, true),
        R_X86_64_PLT32 => ok(false, true, false),
        R_X86_64_PLTOFF64 => ok(false, false, false),
        R_X86_64_GOT32 | R_X86_64_GOTPCREL | R_X86_64_GOTPCRELX | R_X86_64_REX_GOTPCRELX => {
            ok(true, false, false)
        }
        R_X86_64_GOT64 | R_X86_64_GOTPCREL64 | R_X86_64_GOTPLT64 => ok(true, false, false),
        R_X86_64_DTPMOD64
        | R_X86_64_DTPOFF64
        | R_X86_64_TPOFF64
        | R_X86_64_TLSGD
        | R_X86_64_TLSLD
        | R_X86_64_DTPOFF32
        | R_X86_64_GOTTPOFF
        | R_X86_64_TPOFF32
        | R_X86_64_GOTPC32_TLSDESC
        | R_X86_64_TLSDESC_CALL
        | R_X86_64_TLSDESC => Class::ThreadLocal,
        _ => Class::Unsupported,
    }
}

/// Bytes patched by `r_type` (0 for `R_X86_64_NONE` and for types whose width is not known).
pub(crate) fn width(r_type: u32) -> u64 {
    match r_type {
        R_X86_64_64 | R_X86_64_PC64 | R_X86_64_GOTOFF64 | R_X86_64_GOT64 | R_X86_64_GOTPCREL64
        | R_X86_64_GOTPC64 | R_X86_64_GOTPLT64 | R_X86_64_PLTOFF64 | R_X86_64_SIZE64
        | R_X86_64_DTPMOD64 | R_X86_64_DTPOFF64 | R_X86_64_TPOFF64 | R_X86_64_TLSDESC
        | R_X86_64_RELATIVE | R_X86_64_GLOB_DAT | R_X86_64_JUMP_SLOT | R_X86_64_IRELATIVE => 8,
        R_X86_64_PC32
        | R_X86_64_GOT32
        | R_X86_64_PLT32
        | R_X86_64_GOTPCREL
        | R_X86_64_32
        | R_X86_64_32S
        | R_X86_64_GOTPC32
        | R_X86_64_SIZE32
        | R_X86_64_GOTPCRELX
        | R_X86_64_REX_GOTPCRELX
        | R_X86_64_TLSGD
        | R_X86_64_TLSLD
        | R_X86_64_DTPOFF32
        | R_X86_64_GOTTPOFF
        | R_X86_64_TPOFF32
        | R_X86_64_GOTPC32_TLSDESC => 4,
        R_X86_64_16 | R_X86_64_PC16 => 2,
        R_X86_64_8 | R_X86_64_PC8 => 1,
        _ => 0,
    }
}

/// The spec name of `r_type`, or its number for types the psABI does not define.
pub(crate) fn name(r_type: u32) -> String {
    let known = match r_type {
        R_X86_64_NONE => "R_X86_64_NONE",
        R_X86_64_64 => "R_X86_64_64",
        R_X86_64_PC32 => "R_X86_64_PC32",
        R_X86_64_GOT32 => "R_X86_64_GOT32",
        R_X86_64_PLT32 => "R_X86_64_PLT32",
        R_X86_64_COPY => "R_X86_64_COPY",
        R_X86_64_GLOB_DAT => "R_X86_64_GLOB_DAT",
        R_X86_64_JUMP_SLOT => "R_X86_64_JUMP_SLOT",
        R_X86_64_RELATIVE => "R_X86_64_RELATIVE",
        R_X86_64_GOTPCREL => "R_X86_64_GOTPCREL",
        R_X86_64_32 => "R_X86_64_32",
        R_X86_64_32S => "R_X86_64_32S",
        R_X86_64_16 => "R_X86_64_16",
        R_X86_64_PC16 => "R_X86_64_PC16",
        R_X86_64_8 => "R_X86_64_8",
        R_X86_64_PC8 => "R_X86_64_PC8",
        R_X86_64_DTPMOD64 => "R_X86_64_DTPMOD64",
        R_X86_64_DTPOFF64 => "R_X86_64_DTPOFF64",
        R_X86_64_TPOFF64 => "R_X86_64_TPOFF64",
        R_X86_64_TLSGD => "R_X86_64_TLSGD",
        R_X86_64_TLSLD => "R_X86_64_TLSLD",
        R_X86_64_DTPOFF32 => "R_X86_64_DTPOFF32",
        R_X86_64_GOTTPOFF => "R_X86_64_GOTTPOFF",
        R_X86_64_TPOFF32 => "R_X86_64_TPOFF32",
        R_X86_64_PC64 => "R_X86_64_PC64",
        R_X86_64_GOTOFF64 => "R_X86_64_GOTOFF64",
        R_X86_64_GOTPC32 => "R_X86_64_GOTPC32",
        R_X86_64_GOT64 => "R_X86_64_GOT64",
        R_X86_64_GOTPCREL64 => "R_X86_64_GOTPCREL64",
        R_X86_64_GOTPC64 => "R_X86_64_GOTPC64",
        R_X86_64_GOTPLT64 => "R_X86_64_GOTPLT64",
        R_X86_64_PLTOFF64 => "R_X86_64_PLTOFF64",
        R_X86_64_SIZE32 => "R_X86_64_SIZE32",
        R_X86_64_SIZE64 => "R_X86_64_SIZE64",
        R_X86_64_GOTPC32_TLSDESC => "R_X86_64_GOTPC32_TLSDESC",
        R_X86_64_TLSDESC_CALL => "R_X86_64_TLSDESC_CALL",
        R_X86_64_TLSDESC => "R_X86_64_TLSDESC",
        R_X86_64_IRELATIVE => "R_X86_64_IRELATIVE",
        R_X86_64_RELATIVE64 => "R_X86_64_RELATIVE64",
        R_X86_64_GOTPCRELX => "R_X86_64_GOTPCRELX",
        R_X86_64_REX_GOTPCRELX => "R_X86_64_REX_GOTPCRELX",
        _ => return format!("relocation type {r_type}"),
    };
    known.to_owned()
}

/// The operands of one relocation, in the psABI's notation. Addresses are `i128` so that every formula is
/// exact and the range check sees the true value.
#[derive(Clone, Copy, Debug, Default)]
#[allow(non_snake_case)]
pub(crate) struct Operands {
    pub S: i128,
    pub A: i128,
    pub P: i128,
    pub G: i128,
    pub GOT: i128,
    pub L: i128,
    pub Z: i128,
}

/// The value to store, with its field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    None,
    Word64(u64),
    Word32(u32),
}

/// The computed value does not fit its 32-bit field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Overflow;

fn word64(v: i128) -> Result<Field, Overflow> {
    // Truncation is the spec's: word64 fields hold the value modulo 2^64.
    Ok(Field::Word64(v as u64))
}

fn word32_signed(v: i128) -> Result<Field, Overflow> {
    i32::try_from(v)
        .map(|v| Field::Word32(v as u32))
        .map_err(|_| Overflow)
}

fn word32_unsigned(v: i128) -> Result<Field, Overflow> {
    u32::try_from(v).map(Field::Word32).map_err(|_| Overflow)
}

/// Computes the field for a [`Class::Supported`] type; `None` for any other.
#[allow(non_snake_case)]
pub(crate) fn compute(r_type: u32, o: &Operands) -> Option<Result<Field, Overflow>> {
    let Operands {
        S,
        A,
        P,
        G,
        GOT,
        L,
        Z,
    } = *o;
    Some(match r_type {
        R_X86_64_NONE => Ok(Field::None),
        R_X86_64_64 => word64(S + A),
        R_X86_64_PC32 => word32_signed(S + A - P),
        R_X86_64_GOT32 => word32_signed(G + A),
        R_X86_64_PLT32 => word32_signed(L + A - P),
        R_X86_64_GOTPCREL => word32_signed(G + GOT + A - P),
        R_X86_64_32 => word32_unsigned(S + A),
        R_X86_64_32S => word32_signed(S + A),
        R_X86_64_PC64 => word64(S + A - P),
        R_X86_64_GOTOFF64 => word64(S + A - GOT),
        R_X86_64_GOTPC32 => word32_signed(GOT + A - P),
        R_X86_64_GOT64 => word64(G + A),
        R_X86_64_GOTPCREL64 => word64(G + GOT - P + A),
        R_X86_64_GOTPC64 => word64(GOT - P + A),
        R_X86_64_GOTPLT64 => word64(G + A),
        R_X86_64_PLTOFF64 => word64(L - GOT + A),
        R_X86_64_SIZE32 => word32_unsigned(Z + A),
        R_X86_64_SIZE64 => word64(Z + A),
        R_X86_64_GOTPCRELX => word32_signed(G + GOT + A - P),
        R_X86_64_REX_GOTPCRELX => word32_signed(G + GOT + A - P),
        _ => return None,
    })
}

/// Stores `field` at `offset` of `section` (little-endian). The parser checked that every relocation's
/// field lies inside its section, so the slice always exists; `false` if it does not.
pub(crate) fn store(section: &mut [u8], offset: u64, field: Field) -> bool {
    let Ok(at) = usize::try_from(offset) else {
        return false;
    };
    match field {
        Field::None => true,
        Field::Word64(v) => put(section, at, &v.to_le_bytes()),
        Field::Word32(v) => put(section, at, &v.to_le_bytes()),
    }
}

fn put(section: &mut [u8], at: usize, bytes: &[u8]) -> bool {
    match at
        .checked_add(bytes.len())
        .and_then(|end| section.get_mut(at..end))
    {
        Some(dst) => {
            dst.copy_from_slice(bytes);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops() -> Operands {
        Operands {
            S: 0x1000,
            A: -4,
            P: 0x2000,
            G: 0x18,
            GOT: 0x3000,
            L: 0x1100,
            Z: 24,
        }
    }

    #[test]
    fn formulas_match_the_psabi_rows() {
        let o = ops();
        assert_eq!(compute(R_X86_64_64, &o), Some(Ok(Field::Word64(0xffc))));
        assert_eq!(
            compute(R_X86_64_PC32, &o),
            Some(Ok(Field::Word32((-0x1004i32) as u32)))
        );
        assert_eq!(
            compute(R_X86_64_PLT32, &o),
            Some(Ok(Field::Word32((-0xf04i32) as u32)))
        );
        assert_eq!(
            compute(R_X86_64_GOTPCREL, &o),
            Some(Ok(Field::Word32(0x1014)))
        );
        assert_eq!(
            compute(R_X86_64_GOTOFF64, &o),
            Some(Ok(Field::Word64((-0x2004i64) as u64)))
        );
        assert_eq!(
            compute(R_X86_64_GOTPC64, &o),
            Some(Ok(Field::Word64(0xffc)))
        );
        assert_eq!(compute(R_X86_64_GOT64, &o), Some(Ok(Field::Word64(0x14))));
        assert_eq!(
            compute(R_X86_64_PLTOFF64, &o),
            Some(Ok(Field::Word64((-0x1f04i64) as u64)))
        );
        assert_eq!(compute(R_X86_64_SIZE32, &o), Some(Ok(Field::Word32(20))));
        assert_eq!(compute(R_X86_64_16, &o), None);
    }

    #[test]
    fn thirty_two_bit_fields_check_their_range() {
        let far = Operands {
            S: 0x5555_0000_0000,
            ..ops()
        };
        assert_eq!(compute(R_X86_64_PC32, &far), Some(Err(Overflow)));
        assert_eq!(compute(R_X86_64_32, &far), Some(Err(Overflow)));
        let negative = Operands {
            S: -8,
            A: 0,
            ..ops()
        };
        assert_eq!(compute(R_X86_64_32, &negative), Some(Err(Overflow)));
        assert_eq!(
            compute(R_X86_64_32S, &negative),
            Some(Ok(Field::Word32(-8i32 as u32)))
        );
        let edge = Operands {
            S: 0x7fff_ffff,
            A: 0,
            ..ops()
        };
        assert_eq!(
            compute(R_X86_64_32S, &edge),
            Some(Ok(Field::Word32(0x7fff_ffff)))
        );
        let over = Operands {
            S: 0x8000_0000,
            A: 0,
            ..ops()
        };
        assert_eq!(compute(R_X86_64_32S, &over), Some(Err(Overflow)));
        assert_eq!(
            compute(R_X86_64_32, &over),
            Some(Ok(Field::Word32(0x8000_0000)))
        );
    }

    #[test]
    fn tls_and_dynamic_types_are_not_supported() {
        assert_eq!(class(R_X86_64_TPOFF32), Class::ThreadLocal);
        assert_eq!(class(R_X86_64_GOTTPOFF), Class::ThreadLocal);
        assert_eq!(class(R_X86_64_COPY), Class::Unsupported);
        assert_eq!(class(R_X86_64_16), Class::Unsupported);
        assert_eq!(name(R_X86_64_16), "R_X86_64_16");
        assert_eq!(name(200), "relocation type 200");
    }

    #[test]
    fn store_refuses_a_field_past_the_end() {
        let mut buf = [0u8; 8];
        assert!(store(&mut buf, 4, Field::Word32(0x0403_0201)));
        assert_eq!(buf, [0, 0, 0, 0, 1, 2, 3, 4]);
        assert!(!store(&mut buf, 5, Field::Word32(1)));
        assert!(!store(&mut buf, 1, Field::Word64(1)));
    }
}
