//! Finding PROG the way a shell does: a name containing `/` is used as given; any other name is looked
//! up in each directory of `PATH` in turn (an empty entry meaning the current directory), and the first
//! regular file there that may be executed wins.

use core::ffi::CStr;
use rustix::fs::{Access, FileType};
use rustix::io::Errno;

/// glibc's `execvp` search path when `PATH` is not set.
pub const DEFAULT_PATH: &[u8] = b"/bin:/usr/bin";
/// Room for one candidate path (`PATH_MAX`).
pub const PATH_BUF: usize = 4096;

/// Resolves `name` to the path to open, written into `buf` when a search was needed. Fails with
/// `ENOENT` if nothing was found and with `EACCES` if only files that may not be executed were.
pub fn resolve<'b>(
    name: &'b CStr,
    path_var: Option<&[u8]>,
    buf: &'b mut [u8; PATH_BUF],
) -> Result<&'b CStr, Errno> {
    let bytes = name.to_bytes();
    if bytes.contains(&b'/') {
        return Ok(name);
    }
    if bytes.is_empty() {
        return Err(Errno::NOENT);
    }
    let mut found_denied = false;
    let mut found_at = None;
    for dir in path_var.unwrap_or(DEFAULT_PATH).split(|&b| b == b':') {
        let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
        let len = dir.len() + 1 + bytes.len();
        let Some(candidate) = buf.get_mut(..=len) else {
            continue;
        };
        let (dir_part, rest) = candidate.split_at_mut(dir.len());
        dir_part.copy_from_slice(dir);
        let (slash, rest) = rest.split_at_mut(1);
        slash.copy_from_slice(b"/");
        let (name_part, nul) = rest.split_at_mut(bytes.len());
        name_part.copy_from_slice(bytes);
        nul.copy_from_slice(b"\0");
        let Ok(path) = CStr::from_bytes_with_nul(candidate) else {
            continue;
        };
        match rustix::fs::stat(path) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile => {
                if rustix::fs::access(path, Access::EXEC_OK).is_ok() {
                    found_at = Some(len + 1);
                    break;
                }
                found_denied = true;
            }
            _ => {}
        }
    }
    match found_at {
        Some(len) => buf
            .get(..len)
            .and_then(|b| CStr::from_bytes_with_nul(b).ok())
            .ok_or(Errno::NOENT),
        None if found_denied => Err(Errno::ACCESS),
        None => Err(Errno::NOENT),
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn names_with_a_slash_are_used_as_given() {
        let mut buf = [0; PATH_BUF];
        assert_eq!(resolve(c"./x", Some(b"/bin"), &mut buf), Ok(c"./x"));
        assert_eq!(
            resolve(c"/nonexistent/x", None, &mut buf),
            Ok(c"/nonexistent/x")
        );
    }

    #[test]
    fn search_finds_the_first_executable() {
        let dir = std::env::temp_dir().join(std::format!("uexec-search-{}", std::process::id()));
        let (a, b) = (dir.join("a"), dir.join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(a.join("tool"), b"x").unwrap();
        std::fs::set_permissions(a.join("tool"), std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::create_dir_all(a.join("sub")).unwrap();
        std::fs::write(b.join("tool"), b"x").unwrap();
        std::fs::set_permissions(b.join("tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = std::format!("{}:{}", a.display(), b.display());
        let mut buf = [0; PATH_BUF];
        let got = resolve(c"tool", Some(path.as_bytes()), &mut buf).unwrap();
        assert_eq!(
            got.to_bytes(),
            b.join("tool").as_os_str().as_encoded_bytes()
        );
        // A directory of that name is skipped, and a missing name is ENOENT.
        assert_eq!(
            resolve(c"sub", Some(path.as_bytes()), &mut buf),
            Err(Errno::NOENT)
        );
        assert_eq!(
            resolve(c"nothing-here", Some(path.as_bytes()), &mut buf),
            Err(Errno::NOENT)
        );
        assert_eq!(
            resolve(c"", Some(path.as_bytes()), &mut buf),
            Err(Errno::NOENT)
        );
        // Only a file that may not be executed: EACCES, as a shell reports it.
        let only_a = a.as_os_str().as_encoded_bytes();
        assert_eq!(resolve(c"tool", Some(only_a), &mut buf), Err(Errno::ACCESS));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
