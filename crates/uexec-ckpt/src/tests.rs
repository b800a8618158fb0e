//! Unit tests of the parser: a well-formed image round-trips, and every kind of damage is refused.
extern crate std;
use super::*;
use std::vec;
use std::vec::Vec;

fn record(out: &mut Vec<u8>, t: u32, payload: &[u8]) {
    out.extend_from_slice(&record_head(t, payload.len() as u64));
    out.extend_from_slice(payload);
    out.resize(out.len() + pad(payload.len() as u64) as usize, 0);
    out.extend_from_slice(&checksum(payload).to_le_bytes());
}

fn le(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_le_bytes());
}

/// A region record's payload, to be placed at offset `at` of the image (run data is page-aligned in
/// the file).
fn region_payload(at: usize, start: u64, end: u64, runs: &[(u64, u64, u8)]) -> Vec<u8> {
    let mut p = Vec::new();
    le(&mut p, start);
    le(&mut p, end);
    p.extend_from_slice(&3u32.to_le_bytes());
    p.extend_from_slice(&0u32.to_le_bytes());
    le(&mut p, 0);
    le(&mut p, 6);
    p.extend_from_slice(b"[heap]\0\0");
    let mut layout_end = Vec::new();
    for &(first, count, byte) in runs {
        le(&mut p, first);
        le(&mut p, count);
        let padding = (4096 - (at + p.len()) % 4096) % 4096;
        p.resize(p.len() + padding, 0);
        layout_end.push((p.len(), (count * PAGE_SIZE) as usize));
        p.resize(p.len() + (count * PAGE_SIZE) as usize, byte);
    }
    // The layout checksum: everything so far but the run data.
    let mut layout = Checksum::new();
    let mut from = 0;
    for (data_at, len) in layout_end {
        layout.update(&p[from..data_at]);
        from = data_at + len;
    }
    layout.update(&p[from..]);
    le(&mut p, layout.finish());
    p
}

fn image() -> Vec<u8> {
    let mut out = header(4096, 12).to_vec();
    let at = out.len() + RECORD_HEAD_LEN;
    record(
        &mut out,
        tag::REGION,
        &region_payload(at, 0x10000, 0x14000, &[(0, 1, 1), (2, 2, 7)]),
    );
    let at = out.len() + RECORD_HEAD_LEN;
    record(
        &mut out,
        tag::REGION,
        &region_payload(at, 0x20000, 0x21000, &[]),
    );
    let mut regs = Vec::new();
    for i in 0..(1 + NGREG as u64 + 1 + 3 + 2) {
        le(&mut regs, i);
    }
    le(&mut regs, 576);
    regs.resize(regs.len() + 576, 0xaa);
    record(&mut out, tag::REGISTERS, &regs);
    record(&mut out, tag::SIGNALS, &[0u8; SIGNALS_LEN]);
    let mut mm = Vec::new();
    for i in 0..11 {
        le(&mut mm, i);
    }
    le(&mut mm, 16);
    mm.resize(mm.len() + 16, 0);
    record(&mut out, tag::MM, &mm);
    record(&mut out, tag::CWD, b"/tmp");
    let mut f = Vec::new();
    f.extend_from_slice(&3u32.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes());
    le(&mut f, 42);
    le(&mut f, 50);
    le(&mut f, 5);
    f.extend_from_slice(b"/x/yz");
    record(&mut out, tag::FILE, &f);
    record(&mut out, tag::END, &[]);
    out
}

#[test]
fn a_good_image_parses() {
    let bytes = image();
    let img = parse(&bytes).expect("valid");
    assert_eq!(img.ckpt_signal, 12);
    assert_eq!(img.cwd, b"/tmp");
    let regions: Vec<_> = img.regions().collect();
    assert_eq!(regions.len(), 2);
    assert_eq!(
        (regions[0].start, regions[0].end, regions[0].path),
        (0x10000, 0x14000, &b"[heap]"[..])
    );
    let runs: Vec<_> = regions[0].runs().collect();
    assert_eq!(runs.len(), 2);
    assert_eq!((runs[1].first, runs[1].data.len()), (2, 8192));
    for run in &runs {
        assert_eq!(run.file_offset % 4096, 0);
        let at = run.file_offset as usize;
        assert_eq!(&bytes[at..at + run.data.len()], run.data);
    }
    assert_eq!(regions[0].stored(), 3 * 4096);
    assert_eq!(regions[1].runs().count(), 0);
    let files: Vec<_> = img.files().collect();
    assert_eq!(
        files,
        [File {
            fd: 3,
            flags: 1,
            offset: 42,
            size: 50,
            path: b"/x/yz"
        }]
    );
    assert_eq!(img.registers.gregs[0], 1);
    assert_eq!(img.registers.fs_base, 28);
    assert_eq!(img.registers.xsave.len(), 576);
    assert_eq!(img.mm.brk(), 5);
}

#[test]
fn every_truncation_is_refused() {
    let bytes = image();
    for len in 0..bytes.len() {
        assert!(
            parse(&bytes[..len]).is_err(),
            "accepted a prefix of {len} bytes"
        );
    }
    assert_eq!(
        parse(&bytes[..bytes.len() - 8]).unwrap_err(),
        Error::Truncated
    );
}

#[test]
fn every_flipped_byte_is_refused() {
    let bytes = image();
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x40;
        assert!(parse(&b).is_err(), "accepted a flip at {i}");
    }
}

#[test]
fn a_flipped_region_byte_is_a_checksum_error() {
    let mut bytes = image();
    bytes[HEADER_LEN + RECORD_HEAD_LEN + REGION_FIXED + 8 + 16 + 100] ^= 1;
    assert_eq!(
        parse(&bytes).unwrap_err(),
        Error::Checksum(HEADER_LEN as u64)
    );
}

#[test]
fn version_machine_page_size() {
    let mut bytes = image();
    bytes[8] = 2;
    assert_eq!(parse(&bytes).unwrap_err(), Error::WrongVersion(2));
    let mut bytes = image();
    bytes[12] = 3;
    assert_eq!(parse(&bytes).unwrap_err(), Error::WrongMachine(3));
    let mut bytes = image();
    bytes[17] = 0x20;
    assert_eq!(parse(&bytes).unwrap_err(), Error::WrongPageSize(0x2000));
    let mut bytes = image();
    bytes[0] = b'X';
    assert_eq!(parse(&bytes).unwrap_err(), Error::BadMagic);
    let mut bytes = image();
    bytes[20] ^= 1; // the signal: covered by the header checksum
    assert_eq!(parse(&bytes).unwrap_err(), Error::Checksum(0));
}

#[test]
fn trailing_data_and_missing_records() {
    let mut bytes = image();
    bytes.push(0);
    assert_eq!(parse(&bytes).unwrap_err(), Error::TrailingData);
    let mut only_end = header(4096, 12).to_vec();
    record(&mut only_end, tag::END, &[]);
    assert!(matches!(parse(&only_end).unwrap_err(), Error::Missing(_)));
}

#[test]
fn overlapping_and_bad_runs() {
    let build = |regions: &[Vec<u8>]| {
        let good = image();
        let mut out = header(4096, 12).to_vec();
        for r in regions {
            record(&mut out, tag::REGION, r);
        }
        // Reuse the good image's non-region records (everything after its two regions).
        let img = parse(&good).unwrap();
        let skip = HEADER_LEN
            + img
                .regions()
                .map(|r| RECORD_HEAD_LEN + REGION_FIXED + 8 + r.runs.len() + 8 + 8)
                .sum::<usize>();
        out.extend_from_slice(&good[skip..]);
        out
    };
    assert!(parse(&build(&[region_payload(0, 0x10000, 0x12000, &[])])).is_ok());
    let overlap = [
        region_payload(0, 0x10000, 0x12000, &[]),
        region_payload(0, 0x11000, 0x13000, &[]),
    ];
    assert!(matches!(
        parse(&build(&overlap)).unwrap_err(),
        Error::BadRegion(_)
    ));
    let misaligned = [region_payload(0, 0x10001, 0x12000, &[])];
    assert!(matches!(
        parse(&build(&misaligned)).unwrap_err(),
        Error::BadRegion(_)
    ));
    let outside = [region_payload(0, 0x10000, 0x12000, &[(1, 2, 1)])];
    assert!(matches!(
        parse(&build(&outside)).unwrap_err(),
        Error::Malformed(_)
    ));
    let backwards = [region_payload(0, 0x10000, 0x14000, &[(2, 1, 1), (0, 1, 1)])];
    assert!(matches!(
        parse(&build(&backwards)).unwrap_err(),
        Error::Malformed(_)
    ));
}

/// A cheap stand-in for the fuzzer: random mutations of a good image never panic.
#[test]
fn random_mutations_never_panic() {
    let bytes = image();
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut rnd = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..3000 {
        let mut b = bytes.clone();
        for _ in 0..(rnd() % 8 + 1) {
            let i = (rnd() as usize) % b.len();
            b[i] = rnd() as u8;
        }
        let cut = (rnd() as usize) % (b.len() + 1);
        if let Ok(img) = parse(&b[..cut]) {
            for r in img.records() {
                if let Record::Region(r) = r {
                    let _ = r.stored();
                }
            }
        }
    }
}

#[test]
fn checksum_is_the_same_however_the_bytes_are_split() {
    let bytes: Vec<u8> = (0..1000u32).map(|i| (i * 7 + i / 13) as u8).collect();
    let whole = checksum(&bytes);
    for split in [0, 1, 7, 31, 32, 33, 64, 500, 999, 1000] {
        let mut h = Checksum::new();
        h.update(&bytes[..split]);
        h.update(&bytes[split..]);
        assert_eq!(h.finish(), whole, "split at {split}");
    }
}

#[test]
fn checksum_sees_every_single_bit_flip_and_the_length() {
    let bytes = vec![0u8; 200];
    let base = checksum(&bytes);
    for i in 0..bytes.len() * 8 {
        let mut flipped = bytes.clone();
        flipped[i / 8] ^= 1 << (i % 8);
        assert_ne!(checksum(&flipped), base, "bit {i}");
    }
    // Two flips of the same bit in two words of one lane must not cancel out.
    let mut two = bytes.clone();
    two[7] ^= 0x80;
    two[39] ^= 0x80;
    assert_ne!(checksum(&two), base);
    assert_ne!(checksum(&bytes[..199]), base);
    assert_ne!(checksum(&[0u8; 201]), base);
}

#[test]
fn a_lazy_parse_trusts_page_contents_but_not_their_layout() {
    let bytes = image();
    // The first run's data: a flipped byte there is caught by a full parse only.
    let run = parse(&bytes)
        .unwrap()
        .regions()
        .next()
        .unwrap()
        .runs()
        .next()
        .unwrap();
    let mut flipped = bytes.clone();
    flipped[run.file_offset as usize] ^= 1;
    assert!(matches!(parse(&flipped), Err(Error::Checksum(_))));
    assert!(parse_with(&flipped, Verify::AllButPages).is_ok());
    // Any other record is still checksummed, and every prefix still refused.
    let last_record = bytes.len() - 16 - 8;
    let mut other = bytes.clone();
    other[last_record - 3] ^= 1;
    assert!(parse_with(&other, Verify::AllButPages).is_err());
    for len in 0..bytes.len() {
        assert!(parse_with(&bytes[..len], Verify::AllButPages).is_err());
    }
}

#[test]
fn a_lazy_parse_still_checks_region_layout() {
    let bytes = image();
    // The first region's prot (offset 16 in its payload, after the header and the record head).
    let prot_at = HEADER_LEN + RECORD_HEAD_LEN + 16;
    let mut flipped = bytes.clone();
    flipped[prot_at] ^= 1;
    assert!(matches!(
        parse_with(&flipped, Verify::AllButPages),
        Err(Error::Checksum(_))
    ));
}
