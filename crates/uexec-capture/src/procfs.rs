//! Pure readers of the `/proc/self` text files a checkpoint needs: the lines of `maps` and the memory
//! fields of `stat`. No system calls, no allocation, no panics: the capture handler feeds them bytes it
//! read into a fixed buffer.

/// One line of `/proc/self/maps`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Mapping<'a> {
    pub start: u64,
    pub end: u64,
    /// `PROT_*` bits from the `rwx` columns.
    pub prot: u32,
    /// `s` in the fourth column: a shared mapping.
    pub shared: bool,
    pub offset: u64,
    pub inode: u64,
    /// The path or pseudo-name (`[heap]`, `[stack]`, `[vdso]`...), empty for anonymous mappings.
    pub path: &'a [u8],
}

fn hex(field: &[u8]) -> Option<u64> {
    if field.is_empty() || field.len() > 16 {
        return None;
    }
    field.iter().try_fold(0u64, |acc, &c| {
        let digit = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return None,
        };
        Some(acc << 4 | u64::from(digit))
    })
}

fn dec(field: &[u8]) -> Option<u64> {
    if field.is_empty() || field.len() > 20 {
        return None;
    }
    field.iter().try_fold(0u64, |acc, &c| {
        if c.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(c - b'0'))
        } else {
            None
        }
    })
}

/// Splits off the next space-separated field of `line`.
fn field<'a>(line: &mut &'a [u8]) -> Option<&'a [u8]> {
    let start = line.iter().position(|&c| c != b' ')?;
    let rest = line.get(start..)?;
    let len = rest.iter().position(|&c| c == b' ').unwrap_or(rest.len());
    let (f, after) = rest.split_at(len);
    *line = after;
    Some(f)
}

/// Parses one line of `/proc/self/maps` (without its newline).
pub fn mapping(mut line: &[u8]) -> Option<Mapping<'_>> {
    let range = field(&mut line)?;
    let dash = range.iter().position(|&c| c == b'-')?;
    let start = hex(range.get(..dash)?)?;
    let end = hex(range.get(dash + 1..)?)?;
    let perms = field(&mut line)?;
    let [r, w, x, p] = <[u8; 4]>::try_from(perms).ok()?;
    let mut prot = 0;
    for (c, want, bit) in [(r, b'r', 1), (w, b'w', 2), (x, b'x', 4)] {
        if c == want {
            prot |= bit;
        } else if c != b'-' {
            return None;
        }
    }
    let shared = match p {
        b's' => true,
        b'p' => false,
        _ => return None,
    };
    let offset = hex(field(&mut line)?)?;
    let _device = field(&mut line)?;
    let inode = dec(field(&mut line)?)?;
    let skip = line.iter().position(|&c| c != b' ').unwrap_or(line.len());
    let path = line.get(skip..).unwrap_or(&[]);
    (start < end).then_some(Mapping {
        start,
        end,
        prot,
        shared,
        offset,
        inode,
        path,
    })
}

/// Every line of a `maps` text, parsed; `None` items for lines that do not parse.
pub fn mappings(text: &[u8]) -> impl Iterator<Item = Option<Mapping<'_>>> {
    text.split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .map(mapping)
}

/// The fields of `/proc/self/stat` a checkpoint records.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    pub threads: u64,
    /// start_code, end_code, start_data, end_data, start_brk, (brk: not in `stat`, 0),
    /// start_stack, arg_start, arg_end, env_start, env_end: the order of the image's MM record.
    pub mm: [u64; 11],
}

/// Parses `/proc/self/stat`. The command name (field 2) may hold spaces and parentheses, so fields
/// are counted from the last `)`.
pub fn stat(text: &[u8]) -> Option<Stat> {
    let close = text.iter().rposition(|&c| c == b')')?;
    let mut rest = text.get(close + 1..)?;
    // Field 3 (state) is the first after the name; collect fields 3..=51.
    let mut fields = [0u64; 52];
    for (n, slot) in fields.iter_mut().enumerate().skip(3) {
        let f = field(&mut rest)?;
        let f = f.strip_suffix(b"\n").unwrap_or(f);
        // Field 3 is a letter; the rest this reader uses are numbers (some may be negative: unused).
        *slot = if n == 3 { 0 } else { dec(f).unwrap_or(0) };
    }
    let at = |n: usize| fields.get(n).copied().unwrap_or(0);
    Some(Stat {
        threads: at(20),
        mm: [
            at(26),
            at(27),
            at(45),
            at(46),
            at(47),
            0,
            at(28),
            at(48),
            at(49),
            at(50),
            at(51),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines_of_every_kind() {
        let text = b"00400000-00401000 r--p 00000000 fd:01 1234                               /tmp/a b (deleted)\n\
7ffd1000-7ffd3000 rw-p 00000000 00:00 0                                  [stack]\n\
7f0000000000-7f0000001000 ---p 00000000 00:00 0 \n\
7f0000001000-7f0000002000 rwxs 0000a000 00:05 99 /dev/zero\n";
        let all: std::vec::Vec<_> = mappings(text).collect();
        assert_eq!(
            all[0],
            Some(Mapping {
                start: 0x400000,
                end: 0x401000,
                prot: 1,
                shared: false,
                offset: 0,
                inode: 1234,
                path: b"/tmp/a b (deleted)"
            })
        );
        assert_eq!(all[1].unwrap().path, b"[stack]");
        assert_eq!(all[1].unwrap().prot, 3);
        assert_eq!(all[2].unwrap().prot, 0);
        assert_eq!(all[2].unwrap().path, b"");
        let shm = all[3].unwrap();
        assert!(shm.shared);
        assert_eq!((shm.prot, shm.offset, shm.inode), (7, 0xa000, 99));
    }

    #[test]
    fn bad_maps_lines_are_refused() {
        for line in [
            &b""[..],
            b"00400000 r--p 0 0:0 0",
            b"00400000-00401000 r--x 0 00:00 0",
            b"00401000-00400000 r--p 0 00:00 0",
            b"0040000g-00401000 r--p 0 00:00 0",
            b"00400000-00401000 r--p 0 00:00 x",
        ] {
            assert_eq!(mapping(line), None, "{:?}", std::str::from_utf8(line));
        }
    }

    #[test]
    fn stat_fields_after_a_hostile_name() {
        let mut text = std::string::String::from("1234 (a) b (c) S");
        for n in 4..=52 {
            text.push_str(&std::format!(" {}", if n == 20 { 3 } else { n * 100 }));
        }
        text.push('\n');
        let s = stat(text.as_bytes()).unwrap();
        assert_eq!(s.threads, 3);
        assert_eq!(
            s.mm,
            [2600, 2700, 4500, 4600, 4700, 0, 2800, 4800, 4900, 5000, 5100]
        );
        assert_eq!(stat(b"1234 (no close"), None);
        assert_eq!(stat(b"1 (x) S 1 2"), None);
    }
}
