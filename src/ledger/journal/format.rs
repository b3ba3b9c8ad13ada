//! The bytes on disk: segment file names, the segment header and the record frame.
//!
//! ```text
//! segment  = header record*
//! header   = "GAVELJNL" version:u32 first_seq:u64                 (20 bytes, little-endian)
//! record   = len:u32 crc:u32 kind:u8 payload[len]                 (crc = CRC-32 of kind ++ payload)
//! ```
//! A segment is named after the sequence number of its first record (`journal-<20 digits>.log`) so that
//! names sort in record order; the header repeats that number so a renamed file is caught.

use std::ops::Range;

/// Opens every segment; changes only with an incompatible format.
const MAGIC: [u8; 8] = *b"GAVELJNL";
/// The format version written by this code; a file with another version is refused, never guessed at.
const VERSION: u32 = 1;
/// Bytes of the segment header.
pub(super) const HEADER_LEN: usize = 20;
/// Bytes a record takes before its payload: length, checksum, kind.
pub(super) const FRAME_LEN: usize = 9;

const PREFIX: &str = "journal-";
const SUFFIX: &str = ".log";
const SEQ_DIGITS: usize = 20;

/// What a record holds, as the journal sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// One of the ledger's changes.
    Record = 1,
    /// The ledger's whole state; only ever the first record of a segment.
    Snapshot = 2,
}

impl Kind {
    // Zero is deliberately no kind: a zero-filled tail (zeroes the writer preallocates, or blocks the file
    // system allocated but never wrote) must not read as records.
    fn from_byte(byte: u8) -> Option<Kind> {
        match byte {
            1 => Some(Kind::Record),
            2 => Some(Kind::Snapshot),
            _ => None,
        }
    }
}

/// The file name of the segment whose first record has sequence number `first_seq`.
pub(super) fn segment_name(first_seq: u64) -> String {
    format!("{PREFIX}{first_seq:0width$}{SUFFIX}", width = SEQ_DIGITS)
}

/// The first sequence number named by a segment file name; `None` for any other file.
pub(super) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.len() != SEQ_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Whether a file name looks like a segment without being a well-formed one (worth a warning).
pub(super) fn looks_like_segment(name: &str) -> bool {
    name.starts_with(PREFIX) && name.ends_with(SUFFIX)
}

/// Appends the header of a segment starting at `first_seq`.
pub(super) fn encode_header(first_seq: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&first_seq.to_le_bytes());
}

/// The first sequence number a complete header declares, or why the header is not one of ours.
pub(super) fn decode_header(bytes: &[u8]) -> Result<u64, String> {
    let header = bytes.get(..HEADER_LEN).ok_or_else(|| "the segment header is incomplete".to_owned())?;
    if header[..8] != MAGIC {
        return Err("not a Gavel journal segment (bad magic)".to_owned());
    }
    let version = u32::from_le_bytes(le_array(&header[8..12]));
    if version != VERSION {
        return Err(format!("unsupported journal format version {version} (this build reads {VERSION})"));
    }
    Ok(u64::from_le_bytes(le_array(&header[12..20])))
}

/// Appends one framed record. The caller has checked that the payload length fits in a `u32`.
pub(super) fn encode_record(kind: Kind, payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len()).expect("payload length is checked at enqueue");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&checksum(kind as u8, payload).to_le_bytes());
    out.push(kind as u8);
    out.extend_from_slice(payload);
}

fn checksum(kind: u8, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&[kind]);
    hasher.update(payload);
    hasher.finalize()
}

/// One record read back from a segment's bytes.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Frame {
    /// A whole record whose checksum matches; `payload` indexes the bytes it was read from.
    Valid { kind: Kind, payload: Range<usize>, end: usize },
    /// The bytes end inside the record: a write cut short, or a length that was damaged.
    Incomplete { reason: &'static str },
    /// A whole record that fails its checksum or names no kind.
    Invalid { reason: &'static str },
}

/// Reads the record starting at `at`, which is below `bytes.len()`.
pub(super) fn read_frame(bytes: &[u8], at: usize) -> Frame {
    let Some(head) = bytes.get(at..at + FRAME_LEN) else {
        return Frame::Incomplete { reason: "the record header is cut short" };
    };
    let len = u32::from_le_bytes(le_array(&head[0..4])) as usize;
    let stored = u32::from_le_bytes(le_array(&head[4..8]));
    let kind_byte = head[8];
    let start = at + FRAME_LEN;
    let Some(end) = start.checked_add(len).filter(|&end| end <= bytes.len()) else {
        return Frame::Incomplete { reason: "the record payload is cut short" };
    };
    if checksum(kind_byte, &bytes[start..end]) != stored {
        return Frame::Invalid { reason: "the record checksum does not match" };
    }
    match Kind::from_byte(kind_byte) {
        Some(kind) => Frame::Valid { kind, payload: start..end, end },
        None => Frame::Invalid { reason: "the record has an unknown kind" },
    }
}

/// Whether a valid record starts anywhere in `bytes` at or after `from`.
///
/// Decides between a torn tail and damage: a write cut short by a crash leaves nothing valid after the
/// cut, whereas a record that is valid beyond a bad one means acknowledged data may sit behind damage, and
/// only an operator may decide to drop it. Every byte offset is tried, not only the one a (possibly
/// damaged) length prefix points at, so a flipped length cannot hide the records after it.
pub(super) fn valid_record_from(bytes: &[u8], from: usize) -> bool {
    (from..bytes.len()).any(|at| {
        // The kind byte is the cheap filter: it rules out all but 2 in 256 offsets before any checksum.
        let kind_known = bytes.get(at + FRAME_LEN - 1).is_some_and(|&k| Kind::from_byte(k).is_some());
        kind_known && matches!(read_frame(bytes, at), Frame::Valid { .. })
    })
}

fn le_array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    bytes.try_into().expect("callers slice exactly N bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_sort_in_record_order_and_parse_back() {
        let names: Vec<String> = [1, 9, 10, 12_345_678_901].into_iter().map(segment_name).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(names[0], "journal-00000000000000000001.log");
        assert_eq!(parse_segment_name(&names[3]), Some(12_345_678_901));
        assert_eq!(parse_segment_name("journal-1.log"), None);
        assert_eq!(parse_segment_name("journal-0000000000000000000x.log"), None);
        assert!(looks_like_segment("journal-1.log"));
    }

    #[test]
    fn a_record_reads_back_and_any_damage_is_caught() {
        let mut bytes = Vec::new();
        encode_record(Kind::Record, b"hello", &mut bytes);
        assert_eq!(read_frame(&bytes, 0), Frame::Valid { kind: Kind::Record, payload: 9..14, end: 14 });
        for cut in 0..bytes.len() {
            assert!(matches!(read_frame(&bytes[..cut], 0), Frame::Incomplete { .. }), "cut at {cut}");
        }
        for at in 4..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x40;
            assert!(matches!(read_frame(&damaged, 0), Frame::Invalid { .. }), "flip at {at}");
        }
    }

    #[test]
    fn a_header_declares_its_first_sequence_number_and_version() {
        let mut bytes = Vec::new();
        encode_header(42, &mut bytes);
        assert_eq!(bytes.len(), HEADER_LEN);
        assert_eq!(decode_header(&bytes), Ok(42));
        assert!(decode_header(&bytes[..HEADER_LEN - 1]).is_err());
        bytes[8] = 2;
        assert!(decode_header(&bytes).unwrap_err().contains("version 2"));
    }

    #[test]
    fn zeroes_are_not_records() {
        let zeroes = [0u8; 64];
        assert!(!matches!(read_frame(&zeroes, 0), Frame::Valid { .. }));
        assert!(!valid_record_from(&zeroes, 0));
    }
}
