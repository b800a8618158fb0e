//! Splitting an input file into the objects it holds: itself, or every member of an `ar` archive.
//!
//! GNU and BSD archives are read with `object`'s archive reader, which skips the symbol index (`/`,
//! `__.SYMDEF`) and the long-name table (`//`) and bounds-checks every member header. Thin archives (whose
//! members live in other files) are refused, as is a member that is not an ELF object.

use object::read::archive::ArchiveFile;

use crate::error::Error;

/// The `ar` magic.
const AR_MAGIC: &[u8] = b"!<arch>\n";

/// One object to link: a name for messages and its bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Member<'d> {
    pub name: &'d [u8],
    pub data: &'d [u8],
}

/// The objects in `data`; an archive yields its members in order, anything else is one object.
pub(crate) fn members<'d>(display: &str, data: &'d [u8]) -> Result<Vec<Member<'d>>, Error> {
    if !data.starts_with(AR_MAGIC) {
        return Ok(vec![Member { name: b"", data }]);
    }
    let bad = |what: &str| Error::Malformed {
        member: display.to_owned(),
        what: what.to_owned(),
    };
    let archive = ArchiveFile::parse(data).map_err(|e| bad(&e.to_string()))?;
    if archive.is_thin() {
        return Err(bad("thin archives are not supported"));
    }
    let mut out = Vec::new();
    for member in archive.members() {
        let member = member.map_err(|e| bad(&e.to_string()))?;
        let bytes = member.data(data).map_err(|e| bad(&e.to_string()))?;
        out.push(Member {
            name: member.name(),
            data: bytes,
        });
    }
    if out.is_empty() {
        return Err(bad("archive has no members"));
    }
    Ok(out)
}

/// `lib.a(member.o)` for archive members, `lib.o` for a plain object.
pub(crate) fn member_label(display: &str, member: &Member<'_>) -> String {
    if member.name.is_empty() {
        display.to_owned()
    } else {
        format!("{display}({})", String::from_utf8_lossy(member.name))
    }
}
