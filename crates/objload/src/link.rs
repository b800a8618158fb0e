//! Linking a set of parsed objects (one file, or every member of an archive) into one mapped image.
//!
//! The steps, in order; nothing is mapped before the last check that can fail on the input:
//! 1. **Definitions**: the global symbols the objects define, merged across members (strong beats weak, a
//!    definition beats `COMMON`, two `COMMON`s take the larger size and alignment, two strong definitions
//!    are an error). The caller checks the functions among them against other libraries.
//! 2. **Resolution**, for every symbol: the object's own definition; then the load's global definitions;
//!    then, through the [`Resolver`], the host executable, the host's dynamic symbols and earlier libraries.
//!    `_GLOBAL_OFFSET_TABLE_` is this image's GOT. A weak undefined symbol found nowhere is 0. All missing
//!    names are reported together.
//! 3. **Scan** of every relocation: type supported (thread-local ones are refused), which symbols need a
//!    GOT slot, which calls may need a stub, which data must be within 32-bit reach (that decides placement).
//! 4. **Layout** in three page-aligned parts: code and stubs (read-execute), read-only data with the GOT and
//!    the init/fini arrays (read-only once relocated), writable data, `.bss` and `COMMON` (read-write).
//! 5. **Placement** near the targets ([`memory::place`]), copy, GOT and stubs, relocations ([`reloc`]),
//!    the constructor and destructor lists, then each part's final protection.
//!
//! Each step is one function (`define`, `resolve`, `scan`, `layout`, `placement`) that hands the next
//! steps a struct of what it found (`Defined`, `Resolved`, `Scan`, `Layout`); [`link`] only calls them in
//! order.
//!
//! A call stub is `jmp *slot(%rip)` through a GOT slot: any 64-bit target is reachable. A PC-relative
//! reference to a far *function* (taking its address in PIE code) goes to its stub like a canonical PLT
//! entry; one to far *data* cannot be redirected and fails with [`Error::OutOfRange`].

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use crate::error::Error;
use crate::memory::{self, align_up, Mapping, Protection};
use crate::object_file::{Binding, ObjectFile, Place, SectionKind};
use crate::reloc::{self, Class, Field, Operands, Overflow};

/// A symbol found outside the objects being linked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Found {
    pub addr: u64,
    pub is_function: bool,
    /// The earlier library that defines it (an index the resolver understands), if it is one.
    pub library: Option<usize>,
}

/// Where the linker looks for what the objects do not define, and who vets what they export.
pub(crate) trait Resolver {
    /// Rejects the load if one of the global functions it defines may not be registered.
    fn check_functions(&self, functions: &[&str]) -> Result<(), Error>;
    /// Looks `name` up in the host executable, the host's dynamic symbols, then earlier libraries.
    fn resolve(&mut self, name: &[u8]) -> Result<Option<Found>, Error>;
    /// The host's address range, where images are best placed.
    fn host_range(&self) -> Option<(u64, u64)>;
}

/// A global symbol the image defines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Export {
    /// Its name.
    pub name: String,
    /// Its address.
    pub addr: u64,
    /// `STT_FUNC`.
    pub is_function: bool,
}

/// A linked, protected image.
#[derive(Debug)]
pub(crate) struct Linked {
    pub mapping: Mapping,
    pub exports: Vec<Export>,
    /// Constructors, in the order to run them.
    pub init: Vec<u64>,
    /// Destructors, in the order to run them.
    pub fini: Vec<u64>,
    /// Earlier libraries that resolved at least one symbol.
    pub used_libraries: Vec<usize>,
    /// Relocations applied.
    pub relocations: usize,
}

/// A library-wide definition.
#[derive(Clone, Copy, Debug)]
enum Def {
    Section {
        obj: usize,
        section: usize,
        offset: u64,
    },
    Absolute(u64),
    Common(usize),
}

#[derive(Clone, Copy, Debug)]
struct GlobalDef {
    def: Def,
    weak: bool,
    obj: usize,
    is_function: bool,
    size: u64,
}

/// What a symbol resolved to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Target {
    Section {
        obj: usize,
        section: usize,
        offset: u64,
    },
    Common(usize),
    Absolute(u64),
    External {
        addr: u64,
        is_function: bool,
    },
    /// `_GLOBAL_OFFSET_TABLE_`.
    Got,
    /// Defined in a section that is not loaded.
    Unloaded,
}

const GOT_SYMBOL: &[u8] = b"_GLOBAL_OFFSET_TABLE_";
const STUB_SIZE: u64 = 8;

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The merged global definitions by name, and the `(size, alignment)` of each COMMON allocation.
type Definitions<'d> = (HashMap<&'d [u8], GlobalDef>, Vec<(u64, u64)>);

fn definitions<'d>(objects: &[ObjectFile<'d>]) -> Result<Definitions<'d>, Error> {
    let mut defs: HashMap<&'d [u8], GlobalDef> = HashMap::new();
    let mut commons: Vec<(u64, u64)> = Vec::new();
    for (obj, o) in objects.iter().enumerate() {
        for s in &o.symbols {
            if s.binding == Binding::Local || s.name.is_empty() {
                continue;
            }
            let def = match s.place {
                Place::Section { section, offset } => Def::Section {
                    obj,
                    section,
                    offset,
                },
                Place::Absolute(v) => Def::Absolute(v),
                Place::Common { .. } => Def::Common(usize::MAX),
                Place::Undefined | Place::Unloaded => continue,
            };
            let new = GlobalDef {
                def,
                weak: s.binding == Binding::Weak,
                obj,
                is_function: s.is_function() || is_code_label(o, s),
                size: s.size,
            };
            match defs.entry(s.name) {
                Entry::Vacant(v) => {
                    let mut new = new;
                    if let (Def::Common(_), Place::Common { size, align }) = (new.def, s.place) {
                        commons.push((size, align));
                        new.def = Def::Common(commons.len() - 1);
                    }
                    v.insert(new);
                }
                Entry::Occupied(mut e) => {
                    let old = *e.get();
                    match (old.def, new.def, s.place) {
                        (Def::Common(i), Def::Common(_), Place::Common { size, align }) => {
                            if let Some(c) = commons.get_mut(i) {
                                *c = (c.0.max(size), c.1.max(align));
                            }
                        }
                        (Def::Common(_), _, _) => {
                            e.insert(new);
                        }
                        (_, Def::Common(_), _) => {}
                        _ if old.weak => {
                            e.insert(new);
                        }
                        _ if new.weak => {}
                        _ => {
                            let first = objects
                                .get(old.obj)
                                .map(|o| o.name.clone())
                                .unwrap_or_default();
                            return Err(Error::MultipleDefinition {
                                name: lossy(s.name),
                                first,
                                second: o.name.clone(),
                            });
                        }
                    }
                }
            }
        }
    }
    Ok((defs, commons))
}

impl Def {
    /// What a symbol defined this way resolves to.
    fn target(self) -> Target {
        match self {
            Def::Section {
                obj,
                section,
                offset,
            } => Target::Section {
                obj,
                section,
                offset,
            },
            Def::Absolute(v) => Target::Absolute(v),
            Def::Common(i) => Target::Common(i),
        }
    }
}

/// Links `objects` (named `display` in messages) into a new image: the five steps of the module
/// header, one function each.
pub(crate) fn link(
    display: &str,
    objects: &[ObjectFile<'_>],
    resolver: &mut dyn Resolver,
) -> Result<Linked, Error> {
    let defined = define(objects, resolver)?;
    let resolved = resolve(display, objects, &defined.defs, resolver)?;
    let scan = scan(objects, &resolved.targets)?;
    let layout = layout(display, objects, &defined.commons, &scan)?;
    let placed = placement(
        display,
        objects,
        &defined,
        &resolved.targets,
        &scan,
        &layout,
        resolver,
    )?;
    Ok(Linked {
        mapping: placed.mapping,
        exports: placed.exports,
        init: placed.init,
        fini: placed.fini,
        used_libraries: resolved.used_libraries,
        relocations: scan.relocations,
    })
}

/// What step 1 found: the load's global definitions.
struct Defined<'d> {
    /// By name.
    defs: HashMap<&'d [u8], GlobalDef>,
    /// The `(size, alignment)` of each COMMON allocation ([`Def::Common`] indexes it).
    commons: Vec<(u64, u64)>,
    /// The same definitions, sorted by name (the image's exports).
    exported: Vec<(&'d str, GlobalDef)>,
}

/// Step 1, definitions, and the caller's veto on the functions among them.
fn define<'d>(objects: &[ObjectFile<'d>], resolver: &dyn Resolver) -> Result<Defined<'d>, Error> {
    let (defs, commons) = definitions(objects)?;
    let mut exported = Vec::new();
    for (&name, d) in &defs {
        let name = std::str::from_utf8(name).map_err(|_| Error::Malformed {
            member: objects
                .get(d.obj)
                .map(|o| o.name.clone())
                .unwrap_or_default(),
            what: "global symbol name is not UTF-8".to_owned(),
        })?;
        exported.push((name, *d));
    }
    exported.sort_unstable_by_key(|(name, _)| *name);
    let functions: Vec<&str> = exported
        .iter()
        .filter(|(_, d)| d.is_function)
        .map(|(n, _)| *n)
        .collect();
    resolver.check_functions(&functions)?;
    Ok(Defined {
        defs,
        commons,
        exported,
    })
}

/// What step 2 found.
struct Resolved {
    /// `targets[obj][symbol]`: what each symbol of each object resolved to.
    targets: Vec<Vec<Target>>,
    /// Earlier libraries that resolved at least one symbol, in the order first used.
    used_libraries: Vec<usize>,
}

/// Step 2, resolution of every symbol of every object; all missing names are reported together.
fn resolve<'d>(
    display: &str,
    objects: &[ObjectFile<'d>],
    defs: &HashMap<&'d [u8], GlobalDef>,
    resolver: &mut dyn Resolver,
) -> Result<Resolved, Error> {
    let mut cache: HashMap<&[u8], Option<Found>> = HashMap::new();
    let mut missing: Vec<String> = Vec::new();
    let mut missing_seen: HashSet<&[u8]> = HashSet::new();
    let mut used_libraries: Vec<usize> = Vec::new();
    let mut targets: Vec<Vec<Target>> = Vec::with_capacity(objects.len());
    for (obj, o) in objects.iter().enumerate() {
        let mut t = Vec::with_capacity(o.symbols.len());
        for s in &o.symbols {
            let own = match s.place {
                Place::Section { section, offset } if s.binding == Binding::Local => {
                    Some(Target::Section {
                        obj,
                        section,
                        offset,
                    })
                }
                Place::Absolute(v) if s.binding == Binding::Local => Some(Target::Absolute(v)),
                Place::Unloaded if s.binding == Binding::Local => Some(Target::Unloaded),
                _ if s.binding == Binding::Local || s.name.is_empty() => Some(Target::Absolute(0)),
                _ => defs.get(s.name).map(|d| d.def.target()),
            };
            let target = match own {
                Some(target) => target,
                None if s.place == Place::Unloaded => Target::Unloaded,
                None if s.name == GOT_SYMBOL => Target::Got,
                None => {
                    let found = match cache.get(s.name) {
                        Some(f) => *f,
                        None => {
                            let f = resolver.resolve(s.name)?;
                            cache.insert(s.name, f);
                            if let Some(lib) = f.and_then(|f| f.library) {
                                if !used_libraries.contains(&lib) {
                                    used_libraries.push(lib);
                                }
                            }
                            f
                        }
                    };
                    match found {
                        Some(f) => Target::External {
                            addr: f.addr,
                            is_function: f.is_function,
                        },
                        None if s.binding == Binding::Weak => Target::Absolute(0),
                        None => {
                            if missing_seen.insert(s.name) {
                                missing.push(lossy(s.name));
                            }
                            Target::Absolute(0)
                        }
                    }
                }
            };
            t.push(target);
        }
        targets.push(t);
    }
    if !missing.is_empty() {
        return Err(Error::UndefinedSymbols {
            path: display.to_owned(),
            names: missing,
        });
    }
    Ok(Resolved {
        targets,
        used_libraries,
    })
}

/// What step 3 found.
struct Scan {
    /// The GOT slot of each target that needs one (slot number, from 0).
    got_slots: HashMap<Target, u64>,
    /// The call stub of each target that needs one (stub number, from 0).
    stubs: HashMap<Target, u64>,
    /// The range of far data that PC-relative code refers to, which the image must be placed near.
    near: Option<(u64, u64)>,
    /// How many relocations there are.
    relocations: usize,
}

/// Step 3, scan of every relocation: type supported, GOT slots, stubs, the data that must be near.
fn scan(objects: &[ObjectFile<'_>], targets: &[Vec<Target>]) -> Result<Scan, Error> {
    let mut got_slots: HashMap<Target, u64> = HashMap::new();
    let mut stubs: HashMap<Target, u64> = HashMap::new();
    let mut near: Option<(u64, u64)> = None;
    let mut relocations = 0usize;
    for (obj, o) in objects.iter().enumerate() {
        for table in &o.relocs {
            let section_name = || {
                o.sections
                    .get(table.target)
                    .map(|s| lossy(s.name))
                    .unwrap_or_default()
            };
            for r in table.iter() {
                relocations += 1;
                let (got, plt, pc32) = match reloc::class(r.r_type) {
                    Class::Supported { got, plt, near } => (got, plt, near),
                    Class::ThreadLocal => {
                        return Err(Error::ThreadLocal {
                            member: o.name.clone(),
                            what: format!(
                                "relocation {} in section {} at offset {:#x}",
                                reloc::name(r.r_type),
                                section_name(),
                                r.offset
                            ),
                        })
                    }
                    Class::Unsupported => {
                        return Err(Error::UnsupportedRelocation {
                            member: o.name.clone(),
                            section: section_name(),
                            offset: r.offset,
                            r_type: reloc::name(r.r_type),
                        })
                    }
                };
                let target = targets
                    .get(obj)
                    .and_then(|t| t.get(r.symbol))
                    .copied()
                    .unwrap_or(Target::Unloaded);
                if target == Target::Unloaded {
                    return Err(Error::Malformed {
                        member: o.name.clone(),
                        what: "relocation against a symbol in a section that is not loaded"
                            .to_owned(),
                    });
                }
                let far_capable = matches!(target, Target::External { .. } | Target::Absolute(_));
                let needs_stub = far_capable
                    && (plt
                        || (pc32
                            && matches!(
                                target,
                                Target::External {
                                    is_function: true,
                                    ..
                                }
                            )));
                if got || needs_stub {
                    let n = got_slots.len() as u64;
                    got_slots.entry(target).or_insert(n);
                }
                if needs_stub {
                    let n = stubs.len() as u64;
                    stubs.entry(target).or_insert(n);
                }
                if let (
                    true,
                    Target::External {
                        addr,
                        is_function: false,
                    },
                ) = (pc32, target)
                {
                    near = Some(near.map_or((addr, addr + 1), |(lo, hi)| {
                        (lo.min(addr), hi.max(addr + 1))
                    }));
                }
            }
        }
    }
    Ok(Scan {
        got_slots,
        stubs,
        near,
        relocations,
    })
}

/// What step 4 decided: offsets within the image, before it has an address.
struct Layout {
    /// `placed[obj][section]`: the part (0 code, 1 read-only, 2 writable) and offset in it of each loaded
    /// section; `None` for a section that is not loaded.
    placed: Vec<Vec<Option<(usize, u64)>>>,
    /// The offset of each part in the image (page-aligned; code first, at 0).
    part_base: [u64; 3],
    /// The image's length (page-aligned, at least a page).
    total: u64,
    /// Offset of the call stubs in the code part.
    stub_off: u64,
    /// Offset of the GOT in the read-only part.
    got_off: u64,
    /// Offset of each COMMON allocation in the writable part.
    common_off: Vec<u64>,
}

impl Layout {
    /// The offset in the image of section `section` of object `obj`, if it is loaded.
    fn sec_off(&self, obj: usize, section: usize) -> Option<u64> {
        let (part, off) = (*self.placed.get(obj)?.get(section)?)?;
        Some(self.part_base.get(part)? + off)
    }
}

/// The error for an image that is too large to lay out or to reach across.
fn too_big(display: &str) -> Error {
    Error::Malformed {
        member: display.to_owned(),
        what: "loaded sections larger than 1 GiB".to_owned(),
    }
}

/// Step 4, layout: offsets within each of the three page-aligned parts.
fn layout(
    display: &str,
    objects: &[ObjectFile<'_>],
    commons: &[(u64, u64)],
    scan: &Scan,
) -> Result<Layout, Error> {
    let page = memory::page_size();
    let too_big = || too_big(display);
    let mut part_len = [0u64; 3]; // code, read-only, writable
    let mut placed: Vec<Vec<Option<(usize, u64)>>> = Vec::with_capacity(objects.len());
    let part_of = |k: SectionKind| match k {
        SectionKind::Code => Some(0),
        SectionKind::ReadOnly | SectionKind::InitArray | SectionKind::FiniArray => Some(1),
        SectionKind::Writable => Some(2),
        SectionKind::Skip => None,
    };
    let mut alloc = |part: usize, size: u64, align: u64| -> Result<u64, Error> {
        let at = align_up(part_len[part], align).ok_or_else(too_big)?;
        part_len[part] = at.checked_add(size).ok_or_else(too_big)?;
        Ok(at)
    };
    for o in objects {
        let mut p = Vec::with_capacity(o.sections.len());
        for s in &o.sections {
            p.push(match part_of(s.kind) {
                Some(part) => Some((part, alloc(part, s.size, s.align)?)),
                None => None,
            });
        }
        placed.push(p);
    }
    let stub_off = alloc(0, STUB_SIZE * scan.stubs.len() as u64, 16)?;
    let got_off = alloc(1, 8 * scan.got_slots.len() as u64, 8)?;
    let mut common_off = Vec::with_capacity(commons.len());
    for &(size, align) in commons {
        common_off.push(alloc(2, size, align)?);
    }
    let part_base = {
        let ro = align_up(part_len[0], page).ok_or_else(too_big)?;
        let rw = align_up(ro + part_len[1], page).ok_or_else(too_big)?;
        [0, ro, rw]
    };
    let total = align_up(part_base[2] + part_len[2], page)
        .ok_or_else(too_big)?
        .max(page);
    if total > crate::object_file::MAX_IMAGE {
        return Err(too_big());
    }
    Ok(Layout {
        placed,
        part_base,
        total,
        stub_off,
        got_off,
        common_off,
    })
}

/// Where the laid-out image landed: the address of every target.
struct Addresses<'l> {
    base: u64,
    layout: &'l Layout,
    got_addr: u64,
}

impl Addresses<'_> {
    /// The address (S) of target `t`.
    fn value(&self, t: Target) -> u64 {
        let (base, layout) = (self.base, self.layout);
        match t {
            Target::Section {
                obj,
                section,
                offset,
            } => base + layout.sec_off(obj, section).unwrap_or(0) + offset,
            Target::Common(i) => {
                base + layout.part_base[2] + layout.common_off.get(i).copied().unwrap_or(0)
            }
            Target::Absolute(v) => v,
            Target::External { addr, .. } => addr,
            Target::Got => self.got_addr,
            Target::Unloaded => 0,
        }
    }
}

/// What step 5 made.
struct Placed {
    mapping: Mapping,
    exports: Vec<Export>,
    init: Vec<u64>,
    fini: Vec<u64>,
}

/// Step 5, placement near the far data PC-relative code refers to (and the host if both fit); then the copy of
/// the sections, GOT and stubs, relocations, the constructor and destructor lists, the exports, and each
/// part's final protection.
fn placement(
    display: &str,
    objects: &[ObjectFile<'_>],
    defined: &Defined<'_>,
    targets: &[Vec<Target>],
    scan: &Scan,
    layout: &Layout,
    resolver: &dyn Resolver,
) -> Result<Placed, Error> {
    let host = resolver.host_range();
    let mut wishes = Vec::new();
    if let Some((lo, hi)) = scan.near {
        if let Some((h_lo, h_hi)) = host {
            wishes.push((lo.min(h_lo), hi.max(h_hi)));
        }
        wishes.push((lo, hi));
    }
    wishes.extend(host);
    let mut image = memory::place(&wishes, layout.total)?;
    let base = image.addr();
    let at = Addresses {
        base,
        layout,
        got_addr: base + layout.part_base[1] + layout.got_off,
    };
    let bytes = image.bytes_mut();
    copy_sections(bytes, objects, layout);
    write_got_and_stubs(display, bytes, scan, &at)?;
    relocate(display, bytes, objects, &defined.defs, targets, scan, &at)?;
    let (init, fini) = constructors(bytes, objects, layout);
    let exports = defined
        .exported
        .iter()
        .map(|(name, d)| Export {
            name: (*name).to_owned(),
            addr: at.value(d.def.target()),
            is_function: d.is_function,
        })
        .collect();
    let mapping = image.seal(&protections(layout))?;
    Ok(Placed {
        mapping,
        exports,
        init,
        fini,
    })
}

/// Copies the file's bytes of every loaded section (`SHT_NOBITS` stays zero from the anonymous mapping).
fn copy_sections(bytes: &mut [u8], objects: &[ObjectFile<'_>], layout: &Layout) {
    for (obj, o) in objects.iter().enumerate() {
        for (i, s) in o.sections.iter().enumerate() {
            if let (Some(src), Some(off)) = (s.bytes, layout.sec_off(obj, i)) {
                let off = off as usize;
                if let Some(dst) = bytes.get_mut(off..off + src.len()) {
                    dst.copy_from_slice(src);
                }
            }
        }
    }
}

/// GOT slots hold S; each stub jumps through its symbol's slot.
fn write_got_and_stubs(
    display: &str,
    bytes: &mut [u8],
    scan: &Scan,
    at: &Addresses<'_>,
) -> Result<(), Error> {
    let layout = at.layout;
    for (&t, &slot) in &scan.got_slots {
        let off = (layout.part_base[1] + layout.got_off + 8 * slot) as usize;
        if let Some(dst) = bytes.get_mut(off..off + 8) {
            dst.copy_from_slice(&at.value(t).to_le_bytes());
        }
    }
    for (t, &stub) in &scan.stubs {
        let off = layout.stub_off + STUB_SIZE * stub;
        let slot = scan.got_slots.get(t).copied().unwrap_or(0);
        let disp = (at.got_addr + 8 * slot) as i64 - (at.base + off + 6) as i64;
        let disp = i32::try_from(disp).map_err(|_| too_big(display))?;
        let mut code = [0xff, 0x25, 0, 0, 0, 0, 0xcc, 0xcc]; // jmp *disp32(%rip); int3; int3
        code[2..6].copy_from_slice(&disp.to_le_bytes());
        if let Some(dst) = bytes.get_mut(off as usize..(off + STUB_SIZE) as usize) {
            dst.copy_from_slice(&code);
        }
    }
    Ok(())
}

/// Applies every relocation; a PC-relative one that overflows against a symbol with a stub goes to the
/// stub instead.
fn relocate(
    display: &str,
    bytes: &mut [u8],
    objects: &[ObjectFile<'_>],
    defs: &HashMap<&[u8], GlobalDef>,
    targets: &[Vec<Target>],
    scan: &Scan,
    at: &Addresses<'_>,
) -> Result<(), Error> {
    let layout = at.layout;
    for (obj, o) in objects.iter().enumerate() {
        let obj_targets = targets.get(obj).map(Vec::as_slice).unwrap_or_default();
        for table in &o.relocs {
            let Some(s_off) = layout.sec_off(obj, table.target) else {
                continue;
            };
            let s_len = o.sections.get(table.target).map_or(0, |s| s.size);
            let Some(section) = bytes.get_mut(s_off as usize..(s_off + s_len) as usize) else {
                return Err(too_big(display));
            };
            for r in table.iter() {
                let target = obj_targets
                    .get(r.symbol)
                    .copied()
                    .unwrap_or(Target::Unloaded);
                let sym = o.symbols.get(r.symbol);
                let z = match sym {
                    Some(s) if s.place != Place::Undefined => s.size,
                    Some(s) => defs.get(s.name).map_or(0, |d| d.size),
                    None => 0,
                };
                let s_val = at.value(target) as i128;
                let mut ops = Operands {
                    S: s_val,
                    A: r.addend.into(),
                    P: (at.base + s_off + r.offset).into(),
                    G: scan
                        .got_slots
                        .get(&target)
                        .map_or(0, |slot| 8 * *slot as i128),
                    GOT: at.got_addr.into(),
                    L: s_val,
                    Z: z.into(),
                };
                let mut field = reloc::compute(r.r_type, &ops);
                if let (Some(Err(Overflow)), Some(stub)) = (field, scan.stubs.get(&target)) {
                    let stub_addr = (at.base + layout.stub_off + STUB_SIZE * stub) as i128;
                    ops.S = stub_addr;
                    ops.L = stub_addr;
                    field = reloc::compute(r.r_type, &ops);
                }
                let field = match field {
                    Some(Ok(f)) => f,
                    Some(Err(Overflow)) => {
                        return Err(Error::OutOfRange {
                            member: o.name.clone(),
                            section: o
                                .sections
                                .get(table.target)
                                .map(|s| lossy(s.name))
                                .unwrap_or_default(),
                            offset: r.offset,
                            r_type: static_name(r.r_type),
                            symbol: sym.map(|s| symbol_label(o, s)).unwrap_or_default(),
                        })
                    }
                    None => Field::None,
                };
                if !reloc::store(section, r.offset, field) {
                    return Err(Error::Malformed {
                        member: o.name.clone(),
                        what: "relocation field beyond the end of its section".to_owned(),
                    });
                }
            }
        }
    }
    Ok(())
}

/// The constructors and the destructors, in the order to run them, read from the relocated
/// `.init_array` / `.fini_array` sections (by priority, then object, then section).
fn constructors(bytes: &[u8], objects: &[ObjectFile<'_>], layout: &Layout) -> (Vec<u64>, Vec<u64>) {
    let mut arrays: Vec<(u32, usize, usize, SectionKind)> = Vec::new();
    for (obj, o) in objects.iter().enumerate() {
        for (i, s) in o.sections.iter().enumerate() {
            if matches!(s.kind, SectionKind::InitArray | SectionKind::FiniArray) {
                arrays.push((priority(s.name), obj, i, s.kind));
            }
        }
    }
    arrays.sort_by_key(|&(prio, obj, i, _)| (prio, obj, i));
    let mut init = Vec::new();
    let mut fini = Vec::new();
    for &(_, obj, i, kind) in &arrays {
        let (Some(off), Some(s)) = (
            layout.sec_off(obj, i),
            objects.get(obj).and_then(|o| o.sections.get(i)),
        ) else {
            continue;
        };
        let words = bytes
            .get(off as usize..(off + s.size) as usize)
            .unwrap_or_default();
        for w in words.chunks_exact(8) {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            let f = u64::from_le_bytes(b);
            if f != 0 && f != u64::MAX {
                if kind == SectionKind::InitArray {
                    init.push(f)
                } else {
                    fini.push(f)
                }
            }
        }
    }
    fini.reverse();
    (init, fini)
}

/// Each part's final protection: code read-execute, read-only data (with the GOT and the init/fini
/// arrays) read-only, the rest read-write.
fn protections(layout: &Layout) -> [(usize, usize, Protection); 3] {
    let (part_base, total) = (layout.part_base, layout.total);
    [
        (0, part_base[1] as usize, Protection::ReadExecute),
        (
            part_base[1] as usize,
            (part_base[2] - part_base[1]) as usize,
            Protection::Read,
        ),
        (
            part_base[2] as usize,
            (total - part_base[2]) as usize,
            Protection::ReadWrite,
        ),
    ]
}

/// An untyped symbol in executable code (an assembly label) counts as a function.
fn is_code_label(o: &ObjectFile<'_>, s: &crate::object_file::Symbol<'_>) -> bool {
    match s.place {
        Place::Section { section, .. } => {
            s.st_type == object::elf::STT_NOTYPE
                && o.sections
                    .get(section)
                    .is_some_and(|x| x.kind == SectionKind::Code)
        }
        _ => false,
    }
}

/// The `NNNNN` of `.init_array.NNNNN` / `.fini_array.NNNNN` (lower runs first), 65536 for the plain ones.
fn priority(name: &[u8]) -> u32 {
    let s = String::from_utf8_lossy(name);
    s.rsplit_once('.')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(65536)
}

fn static_name(r_type: u32) -> &'static str {
    use object::elf::*;
    match r_type {
        R_X86_64_PC32 => "R_X86_64_PC32",
        R_X86_64_PLT32 => "R_X86_64_PLT32",
        R_X86_64_32 => "R_X86_64_32",
        R_X86_64_32S => "R_X86_64_32S",
        R_X86_64_GOT32 => "R_X86_64_GOT32",
        R_X86_64_GOTPCREL => "R_X86_64_GOTPCREL",
        R_X86_64_GOTPCRELX => "R_X86_64_GOTPCRELX",
        R_X86_64_REX_GOTPCRELX => "R_X86_64_REX_GOTPCRELX",
        R_X86_64_GOTPC32 => "R_X86_64_GOTPC32",
        R_X86_64_SIZE32 => "R_X86_64_SIZE32",
        _ => "relocation",
    }
}

fn symbol_label(o: &ObjectFile<'_>, s: &crate::object_file::Symbol<'_>) -> String {
    if !s.name.is_empty() {
        return lossy(s.name);
    }
    match s.place {
        Place::Section { section, .. } => o
            .sections
            .get(section)
            .map(|x| lossy(x.name))
            .unwrap_or_default(),
        _ => String::new(),
    }
}
