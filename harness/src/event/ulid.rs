//! Event ids: ULIDs derived from the event, so an import run twice gives the same ids.

use sha2::{Digest, Sha256};

/// A ULID made from the event time (its 48-bit ms prefix) and a hash of (stream, seq) (its
/// 80 random bits): sortable by time, unique per event, the same on every import.
pub fn derived_ulid(occurred_at_ns: i64, stream_key: &str, seq: u64) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let ms = (occurred_at_ns.max(0) / 1_000_000) as u128 & ((1 << 48) - 1);
    let mut h = Sha256::new();
    h.update(stream_key.as_bytes());
    h.update(seq.to_le_bytes());
    let d = h.finalize();
    let rand = u128::from_be_bytes(d[..16].try_into().unwrap()) >> 48;
    let v = (ms << 80) | rand;
    (0..26)
        .map(|i| ALPHABET[((v >> (125 - i * 5)) & 31) as usize] as char)
        .collect()
}
