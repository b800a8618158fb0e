//! How many arguments a library's function takes, read from the DWARF debugging information of the
//! object (or archive member) that defines it, so that `call` can refuse a call with too few or too many.
//!
//! A relocatable object's `.debug_info` holds its references to `.debug_str`, `.debug_abbrev` and the
//! other debug sections as relocations, not as values: they are applied here (symbol value plus addend,
//! which for the section symbols these relocations name is the addend alone) before gimli reads the
//! units. An object built without `-g` has no such information: its functions' arity is unknown.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use object::{Object, ObjectSection, ObjectSymbol, RelocationTarget};

/// What the debugging information says of a function's parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arity {
    /// Exactly these parameters, by name (`?` for an unnamed one).
    Exactly(Vec<String>),
    /// These, then `...`.
    AtLeast(Vec<String>),
}

/// The parameters of every function defined with debugging information in the object or archive at
/// `path`; empty if it has none or cannot be read.
pub fn functions(path: &Path) -> HashMap<String, Arity> {
    let mut found = HashMap::new();
    let Ok(data) = std::fs::read(path) else {
        return found;
    };
    if let Ok(archive) = object::read::archive::ArchiveFile::parse(&*data) {
        for member in archive.members().flatten() {
            if let Ok(bytes) = member.data(&*data) {
                read_object(bytes, &mut found);
            }
        }
    } else {
        read_object(&data, &mut found);
    }
    found
}

/// One debug section's bytes with the object's relocations for it applied.
fn relocated<'d>(file: &object::File<'d>, name: &str) -> Cow<'d, [u8]> {
    let Some(section) = file.section_by_name(name) else {
        return Cow::Borrowed(&[]);
    };
    let Ok(data) = section.data() else {
        return Cow::Borrowed(&[]);
    };
    let mut relocs = section.relocations().peekable();
    if relocs.peek().is_none() {
        return Cow::Borrowed(data);
    }
    let mut bytes = data.to_vec();
    for (offset, reloc) in relocs {
        let base = match reloc.target() {
            RelocationTarget::Symbol(index) => file
                .symbol_by_index(index)
                .map_or(0, |symbol| symbol.address()),
            _ => 0,
        };
        let value = base.wrapping_add_signed(reloc.addend());
        let Ok(at) = usize::try_from(offset) else {
            continue;
        };
        match reloc.size() {
            32 => {
                if let Some(dest) = bytes.get_mut(at..at + 4) {
                    dest.copy_from_slice(&(value as u32).to_le_bytes());
                }
            }
            64 => {
                if let Some(dest) = bytes.get_mut(at..at + 8) {
                    dest.copy_from_slice(&value.to_le_bytes());
                }
            }
            _ => {}
        }
    }
    Cow::Owned(bytes)
}

fn read_object(data: &[u8], found: &mut HashMap<String, Arity>) {
    let Ok(file) = object::File::parse(data) else {
        return;
    };
    if file.section_by_name(".debug_info").is_none() {
        return;
    }
    let sections =
        gimli::DwarfSections::load(|id| -> Result<_, ()> { Ok(relocated(&file, id.name())) });
    let Ok(sections) = sections else { return };
    let dwarf = sections.borrow(|section| gimli::EndianSlice::new(section, gimli::LittleEndian));
    let _ = read_units(&dwarf, found);
}

fn read_units<R: gimli::Reader>(
    dwarf: &gimli::Dwarf<R>,
    found: &mut HashMap<String, Arity>,
) -> gimli::Result<()> {
    let mut units = dwarf.units();
    while let Some(header) = units.next()? {
        let unit = dwarf.unit(header)?;
        let mut tree = unit.entries_tree(None)?;
        let root = tree.root()?;
        let mut children = root.children();
        while let Some(node) = children.next()? {
            let entry = node.entry();
            if entry.tag() != gimli::DW_TAG_subprogram {
                continue;
            }
            // A definition only: a declaration of a function called from this unit says nothing of
            // the library's own functions.
            if let Some(gimli::AttributeValue::Flag(true)) =
                entry.attr_value(gimli::DW_AT_declaration)?
            {
                continue;
            }
            let Some(name) = name_of(dwarf, &unit, entry)? else {
                continue;
            };
            let mut params = Vec::new();
            let mut variadic = false;
            let mut parts = node.children();
            while let Some(part) = parts.next()? {
                let e = part.entry();
                match e.tag() {
                    gimli::DW_TAG_formal_parameter => {
                        params.push(name_of(dwarf, &unit, e)?.unwrap_or_else(|| "?".to_owned()));
                    }
                    gimli::DW_TAG_unspecified_parameters => variadic = true,
                    _ => {}
                }
            }
            let arity = if variadic {
                Arity::AtLeast(params)
            } else {
                Arity::Exactly(params)
            };
            found.insert(name, arity);
        }
    }
    Ok(())
}

fn name_of<R: gimli::Reader>(
    dwarf: &gimli::Dwarf<R>,
    unit: &gimli::Unit<R>,
    entry: &gimli::DebuggingInformationEntry<'_, '_, R>,
) -> gimli::Result<Option<String>> {
    let Some(value) = entry.attr_value(gimli::DW_AT_name)? else {
        return Ok(None);
    };
    let s = dwarf.attr_string(unit, value)?;
    Ok(Some(s.to_string_lossy()?.into_owned()))
}

/// Why a call with `given` arguments does not fit `arity`, if it does not.
pub fn mismatch(name: &str, arity: &Arity, given: usize) -> Option<String> {
    let list = |p: &[String]| p.join(", ");
    match arity {
        Arity::Exactly(p) if p.is_empty() && given > 0 => {
            Some(format!("{name} takes no arguments, {given} given"))
        }
        Arity::Exactly(p) if p.len() != given => Some(format!(
            "{name} takes {} argument{} ({}), {given} given",
            p.len(),
            if p.len() == 1 { "" } else { "s" },
            list(p)
        )),
        Arity::AtLeast(p) if given < p.len() => Some(format!(
            "{name} takes at least {} argument{} ({}, ...), {given} given",
            p.len(),
            if p.len() == 1 { "" } else { "s" },
            list(p)
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_must_give_each_parameter() {
        let two = Arity::Exactly(vec!["a".into(), "b".into()]);
        assert_eq!(
            mismatch("add", &two, 1).as_deref(),
            Some("add takes 2 arguments (a, b), 1 given")
        );
        assert_eq!(mismatch("add", &two, 2), None);
        assert!(mismatch("add", &two, 3).is_some());
        let none = Arity::Exactly(vec![]);
        assert_eq!(
            mismatch("boom", &none, 1).as_deref(),
            Some("boom takes no arguments, 1 given")
        );
        let var = Arity::AtLeast(vec!["fmt".into()]);
        assert!(mismatch("say", &var, 0).is_some());
        assert_eq!(mismatch("say", &var, 4), None);
    }
}
