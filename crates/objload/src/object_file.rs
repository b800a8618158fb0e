//! Reading one relocatable x86-64 ELF object: its sections, symbols and relocation tables.
//!
//! Everything here is a bounds-checked view into the file's bytes (through `object`'s ELF reader); nothing is
//! mapped or executed. [`ObjectFile::parse`] validates every field the linker will later trust: the header
//! (class, byte order, machine, `ET_REL`), section sizes and alignments, symbol section indices, and for
//! each relocation its symbol index and that its whole field lies inside the patched section. A file that
//! passes can be linked without further range checks on its own structure.

use object::elf;
use object::read::elf::{FileHeader, Rela as _, SectionHeader, Sym as _};
use object::read::{SectionIndex, StringTable};
use object::LittleEndian as LE;

use crate::error::{object_error, Error, Malformed};
use crate::reloc;

type Header = elf::FileHeader64<LE>;
type Shdr = elf::SectionHeader64<LE>;

/// Largest section alignment accepted: the image is page-aligned, so anything above a page cannot be honoured.
pub(crate) const MAX_ALIGN: u64 = 4096;
/// Largest total size of the loaded sections of one load (a guard against hostile `SHT_NOBITS` sizes).
pub(crate) const MAX_IMAGE: u64 = 1 << 30;

/// How a section is loaded: which part of the image it goes to, and whether it is special.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SectionKind {
    /// Not loaded (no `SHF_ALLOC`): symbol tables, debug info, notes. Relocations against it are skipped.
    Skip,
    /// Executable code: read-execute.
    Code,
    /// Read-only after relocation: constants, `.data.rel.ro`, `.eh_frame`.
    ReadOnly,
    /// Writable data and zero-filled `.bss`.
    Writable,
    /// `.init_array` / `.preinit_array`: function pointers run on load, read-only after relocation.
    InitArray,
    /// `.fini_array`: function pointers run on unload, read-only after relocation.
    FiniArray,
}

/// A section of the object.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Section<'d> {
    pub name: &'d [u8],
    pub kind: SectionKind,
    /// The file bytes, `None` for `SHT_NOBITS`.
    pub bytes: Option<&'d [u8]>,
    pub size: u64,
    pub align: u64,
}

/// Where a symbol's value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    /// Defined elsewhere: to be resolved by name.
    Undefined,
    /// `SHN_ABS`: the value is the address.
    Absolute(u64),
    /// `SHN_COMMON`: to be allocated with this size and alignment.
    Common { size: u64, align: u64 },
    /// Defined at `offset` within loaded section `section`.
    Section { section: usize, offset: u64 },
    /// Defined in a section that is not loaded: only an error if a relocation refers to it.
    Unloaded,
}

/// `STB_*` binding, reduced to what linking distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Binding {
    Local,
    Global,
    Weak,
}

/// A symbol-table entry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Symbol<'d> {
    pub name: &'d [u8],
    pub place: Place,
    pub binding: Binding,
    /// `STT_*`.
    pub st_type: u8,
    pub size: u64,
}

impl Symbol<'_> {
    pub(crate) fn is_function(&self) -> bool {
        self.st_type == elf::STT_FUNC || self.st_type == elf::STT_GNU_IFUNC
    }
}

/// One `SHT_RELA` table and the loaded section it patches.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RelocTable<'d> {
    /// Index of the patched section.
    pub target: usize,
    pub entries: &'d [elf::Rela64<LE>],
}

/// One decoded relocation entry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rela {
    pub offset: u64,
    pub r_type: u32,
    pub symbol: usize,
    pub addend: i64,
}

impl RelocTable<'_> {
    pub(crate) fn iter(&self) -> impl Iterator<Item = Rela> + '_ {
        self.entries.iter().map(|r| Rela {
            offset: r.r_offset(LE),
            r_type: r.r_type(LE, false),
            symbol: r.r_sym(LE, false) as usize,
            addend: r.r_addend(LE),
        })
    }
}

/// A parsed and validated relocatable object.
#[derive(Debug)]
pub(crate) struct ObjectFile<'d> {
    /// The file or archive member, for messages.
    pub name: String,
    pub sections: Vec<Section<'d>>,
    pub symbols: Vec<Symbol<'d>>,
    pub relocs: Vec<RelocTable<'d>>,
}

fn machine_name(machine: u16) -> String {
    let name = match machine {
        elf::EM_386 => "EM_386",
        elf::EM_ARM => "EM_ARM",
        elf::EM_AARCH64 => "EM_AARCH64",
        elf::EM_RISCV => "EM_RISCV",
        elf::EM_PPC64 => "EM_PPC64",
        elf::EM_S390 => "EM_S390",
        elf::EM_MIPS => "EM_MIPS",
        elf::EM_NONE => "EM_NONE",
        _ => "machine",
    };
    format!("{name} ({machine})")
}

fn kind_of(name: &[u8], sh_type: u32, flags: u64) -> SectionKind {
    if flags & u64::from(elf::SHF_ALLOC) == 0 {
        return SectionKind::Skip;
    }
    match sh_type {
        elf::SHT_INIT_ARRAY | elf::SHT_PREINIT_ARRAY => return SectionKind::InitArray,
        elf::SHT_FINI_ARRAY => return SectionKind::FiniArray,
        _ => {}
    }
    if flags & u64::from(elf::SHF_EXECINSTR) != 0 {
        SectionKind::Code
    } else if flags & u64::from(elf::SHF_WRITE) != 0 && !name.starts_with(b".data.rel.ro") {
        SectionKind::Writable
    } else {
        SectionKind::ReadOnly
    }
}

impl<'d> ObjectFile<'d> {
    /// Parses and validates `data`, naming it `name` in errors.
    pub(crate) fn parse(name: &str, data: &'d [u8]) -> Result<Self, Error> {
        let bad = |m: Malformed| Error::malformed(name, m);
        if !data.starts_with(&elf::ELFMAG) {
            return Err(bad(Malformed("not an ELF file (bad magic)")));
        }
        let ident = data
            .get(..16)
            .ok_or(bad(Malformed("file shorter than an ELF identification")))?;
        if ident[4] != elf::ELFCLASS64 || ident[5] != elf::ELFDATA2LSB {
            let class = if ident[4] == elf::ELFCLASS32 {
                "ELF32"
            } else {
                "another ELF class"
            };
            let order = if ident[5] == elf::ELFDATA2MSB {
                " big-endian"
            } else {
                ""
            };
            return Err(Error::WrongMachine {
                member: name.to_owned(),
                found: format!("{class}{order}"),
            });
        }
        let header = Header::parse(data).map_err(|e| obj_err(name, e))?;
        let machine = header.e_machine(LE);
        if machine != elf::EM_X86_64 {
            return Err(Error::WrongMachine {
                member: name.to_owned(),
                found: machine_name(machine),
            });
        }
        let e_type = header.e_type(LE);
        if e_type != elf::ET_REL {
            return Err(Error::NotRelocatable {
                member: name.to_owned(),
                e_type,
            });
        }
        if header.e_shoff(LE) != 0 && usize::from(header.e_shentsize(LE)) != size_of::<Shdr>() {
            return Err(bad(Malformed(
                "e_shentsize is not the size of a section header",
            )));
        }
        let table = header.sections(LE, data).map_err(|e| obj_err(name, e))?;

        let mut sections = Vec::with_capacity(table.len());
        let mut total: u64 = 0;
        let mut symtab = None;
        for (index, sh) in table.iter().enumerate() {
            let sec_name = table.section_name(LE, sh).map_err(|e| obj_err(name, e))?;
            let sh_type = sh.sh_type(LE);
            let flags = sh.sh_flags(LE);
            let kind = kind_of(sec_name, sh_type, flags);
            if kind != SectionKind::Skip && flags & u64::from(elf::SHF_TLS) != 0 {
                return Err(Error::ThreadLocal {
                    member: name.to_owned(),
                    what: format!("section {}", String::from_utf8_lossy(sec_name)),
                });
            }
            let align = match sh.sh_addralign(LE) {
                0 => 1,
                a if a.is_power_of_two() && a <= MAX_ALIGN => a,
                a if a.is_power_of_two() => {
                    return Err(bad(Malformed("section alignment above the page size")))
                }
                _ => return Err(bad(Malformed("section alignment is not a power of two"))),
            };
            let size = sh.sh_size(LE);
            let bytes = if kind == SectionKind::Skip || sh_type == elf::SHT_NOBITS {
                None
            } else {
                Some(
                    sh.data(LE, data)
                        .map_err(|_| bad(Malformed("section data lies outside the file")))?,
                )
            };
            if kind != SectionKind::Skip {
                total = total
                    .checked_add(size)
                    .and_then(|t| t.checked_add(align))
                    .filter(|t| *t <= MAX_IMAGE)
                    .ok_or(bad(Malformed("loaded sections larger than 1 GiB")))?;
            }
            match sh_type {
                elf::SHT_SYMTAB if symtab.is_some() => {
                    return Err(bad(Malformed("more than one SHT_SYMTAB")))
                }
                elf::SHT_SYMTAB => symtab = Some(index),
                elf::SHT_REL if kind_of(b"", 0, target_flags(&table, sh)) != SectionKind::Skip => {
                    return Err(bad(Malformed("SHT_REL relocations (x86-64 uses SHT_RELA)")))
                }
                _ => {}
            }
            sections.push(Section {
                name: sec_name,
                kind,
                bytes,
                size,
                align,
            });
        }

        let symbols = match symtab {
            None => Vec::new(),
            Some(index) => parse_symbols(name, data, &table, index, &sections)?,
        };

        let mut relocs = Vec::new();
        for sh in table.iter() {
            if sh.sh_type(LE) != elf::SHT_RELA {
                continue;
            }
            let target = sh.sh_info(LE) as usize;
            let patched = sections
                .get(target)
                .ok_or(bad(Malformed("SHT_RELA sh_info is not a section")))?;
            if patched.kind == SectionKind::Skip {
                continue;
            }
            if Some(sh.sh_link(LE) as usize) != symtab {
                return Err(bad(Malformed("SHT_RELA sh_link is not the symbol table")));
            }
            let (entries, _) = sh
                .rela(LE, data)
                .map_err(|e| obj_err(name, e))?
                .ok_or(bad(Malformed("bad SHT_RELA")))?;
            let table = RelocTable { target, entries };
            for r in table.iter() {
                check_rela(name, &r, patched, &symbols)?;
            }
            relocs.push(table);
        }
        Ok(ObjectFile {
            name: name.to_owned(),
            sections,
            symbols,
            relocs,
        })
    }
}

fn obj_err(name: &str, e: object::read::Error) -> Error {
    Error::Malformed {
        member: name.to_owned(),
        what: object_error(e),
    }
}

fn target_flags(table: &object::read::elf::SectionTable<'_, Header>, sh: &Shdr) -> u64 {
    table
        .section(SectionIndex(sh.sh_info(LE) as usize))
        .map(|t| t.sh_flags(LE))
        .unwrap_or(0)
}

fn parse_symbols<'d>(
    name: &str,
    data: &'d [u8],
    table: &object::read::elf::SectionTable<'d, Header>,
    index: usize,
    sections: &[Section<'d>],
) -> Result<Vec<Symbol<'d>>, Error> {
    let bad = |m: Malformed| Error::malformed(name, m);
    let symtab = table
        .symbol_table_by_index(LE, data, SectionIndex(index))
        .map_err(|e| obj_err(name, e))?;
    let strings: StringTable<'d> = symtab.strings();
    let mut out = Vec::with_capacity(symtab.len());
    for (i, sym) in symtab.enumerate() {
        let sym_name = sym
            .name(LE, strings)
            .map_err(|_| bad(Malformed("symbol name outside the string table")))?;
        let binding = match sym.st_bind() {
            elf::STB_LOCAL => Binding::Local,
            elf::STB_GLOBAL | elf::STB_GNU_UNIQUE => Binding::Global,
            elf::STB_WEAK => Binding::Weak,
            _ => {
                return Err(bad(Malformed(
                    "symbol binding is not LOCAL, GLOBAL or WEAK",
                )))
            }
        };
        let st_type = sym.st_type();
        let shndx = sym.st_shndx(LE);
        let place = match shndx {
            elf::SHN_UNDEF => Place::Undefined,
            elf::SHN_ABS => Place::Absolute(sym.st_value(LE)),
            elf::SHN_COMMON => {
                let align = sym.st_value(LE).max(1);
                if !align.is_power_of_two() || align > MAX_ALIGN {
                    return Err(bad(Malformed(
                        "COMMON symbol alignment is not a power of two up to a page",
                    )));
                }
                if sym.st_size(LE) > MAX_IMAGE {
                    return Err(bad(Malformed("COMMON symbol larger than 1 GiB")));
                }
                Place::Common {
                    size: sym.st_size(LE),
                    align,
                }
            }
            _ => {
                let section = symtab
                    .symbol_section(LE, sym, i)
                    .map_err(|e| obj_err(name, e))?
                    .ok_or(bad(Malformed("symbol has a reserved section index")))?
                    .0;
                let sec = sections
                    .get(section)
                    .ok_or(bad(Malformed("symbol section index out of range")))?;
                if sec.kind == SectionKind::Skip {
                    Place::Unloaded
                } else {
                    let offset = sym.st_value(LE);
                    if offset > sec.size {
                        return Err(bad(Malformed("symbol value beyond the end of its section")));
                    }
                    Place::Section { section, offset }
                }
            }
        };
        if st_type == elf::STT_TLS {
            return Err(Error::ThreadLocal {
                member: name.to_owned(),
                what: format!("symbol {}", String::from_utf8_lossy(sym_name)),
            });
        }
        if binding == Binding::Local && place == Place::Undefined && i.0 != 0 {
            return Err(bad(Malformed("undefined local symbol")));
        }
        out.push(Symbol {
            name: sym_name,
            place,
            binding,
            st_type,
            size: sym.st_size(LE),
        });
    }
    Ok(out)
}

fn check_rela(
    name: &str,
    r: &Rela,
    patched: &Section<'_>,
    symbols: &[Symbol<'_>],
) -> Result<(), Error> {
    let bad = |what: &str| Error::Malformed {
        member: name.to_owned(),
        what: what.to_owned(),
    };
    if r.symbol >= symbols.len() {
        return Err(bad("relocation symbol index out of range"));
    }
    let width = reloc::width(r.r_type);
    if r.offset
        .checked_add(width)
        .is_none_or(|end| end > patched.size)
    {
        return Err(bad("relocation field beyond the end of its section"));
    }
    Ok(())
}

/// A summary of what [`crate::inspect`] found, for tools and the fuzz target.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inspection {
    /// Objects read (1 for an object file, the member count for an archive).
    pub objects: usize,
    /// Loaded sections in all of them.
    pub sections: usize,
    /// Symbols in all of them.
    pub symbols: usize,
    /// Relocations against loaded sections in all of them.
    pub relocations: usize,
    /// Names of the global functions defined.
    pub functions: Vec<String>,
}

impl Inspection {
    pub(crate) fn add(&mut self, obj: &ObjectFile<'_>) {
        self.objects += 1;
        self.sections += obj
            .sections
            .iter()
            .filter(|s| s.kind != SectionKind::Skip)
            .count();
        self.symbols += obj.symbols.len();
        self.relocations += obj.relocs.iter().map(|t| t.entries.len()).sum::<usize>();
        for s in &obj.symbols {
            if s.binding != Binding::Local
                && s.is_function()
                && matches!(s.place, Place::Section { .. })
            {
                self.functions
                    .push(String::from_utf8_lossy(s.name).into_owned());
            }
        }
    }
}
