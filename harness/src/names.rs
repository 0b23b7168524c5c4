//! Stream keys (and module names) as file names: the one rule every file Tapedeck names after
//! a key follows (the file store's `snapshots/<stream>/` folders, its snapshot and quarantine
//! files, `.snap` files, insta snapshot suffixes).
//!
//! Invariants of [`file_name`]:
//! - injective: two different keys never give the same name, so two streams never share a
//!   file (`md:a:B` is `md%3Aa%3AB`, `md/a/B` is `md%2Fa%2FB`);
//! - reversible: [`key_of`] gives the key back, and refuses any name `file_name` would not
//!   write (lowercase hex, an escaped safe byte, a stray `%`);
//! - one safe path component: only `[A-Za-z0-9_-]` and `%XX` (uppercase hex of each other
//!   UTF-8 byte), never empty, never `.`/`..` nor a hidden name (a `.` is `%2E`); the empty
//!   key is the lone `%`, a name no other key gives.
//!
//! Limits, for keys beyond the usual `kind:venue:SYMBOL`: letters keep their case, so keys
//! that differ only in case share a file on a case-insensitive file system (macOS, Windows);
//! and a byte outside the safe set takes three, so a key of more than about 85 unusual bytes
//! exceeds the 255-byte name limit of common file systems.
//!
//! The rule is the `%XX` encoding the file store always used: the committed fixture store is
//! named by it. Before it, `.snap` files and insta suffixes turned every unsafe character into
//! `-`, which is not injective; [`legacy_name`] keeps that old rule only to find and rename
//! such files.

/// A stream key or module name as one safe path component (`%XX` for anything outside
/// `[A-Za-z0-9_-]`).
pub fn file_name(key: &str) -> String {
    if key.is_empty() {
        return "%".to_string();
    }
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if is_safe(b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(hex_digit(b >> 4));
            out.push(hex_digit(b & 0xf));
        }
    }
    out
}

/// The key a [`file_name`] stands for; `None` for a name `file_name` does not write.
pub fn key_of(name: &str) -> Option<String> {
    if name == "%" {
        return Some(String::new());
    }
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = hex_value(*bytes.get(i + 1)?)?;
                let lo = hex_value(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b if is_safe(b) => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    let key = String::from_utf8(out).ok()?;
    // Canonical names only: `%41` for `A` would decode, but `file_name` writes `A`.
    (file_name(&key) == name).then_some(key)
}

/// The rule `.snap` files were named by before [`file_name`]: every character outside
/// `[A-Za-z0-9_-]` as `-`. Not injective (`md:a:B` and `md/a/B` are both `md-a-B`), so it
/// only serves to recognise and rename old files.
pub fn legacy_name(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii() && is_safe(c as u8) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn is_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn hex_digit(n: u8) -> char {
    char::from(b"0123456789ABCDEF"[usize::from(n)])
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_file_store_encoding_is_unchanged() {
        assert_eq!(file_name("exec:sim:SYM1"), "exec%3Asim%3ASYM1");
        assert_eq!(
            file_name("md:binance-spot:BTC_USDT"),
            "md%3Abinance-spot%3ABTC_USDT"
        );
        assert_eq!(file_name("a b/é"), "a%20b%2F%C3%A9");
        assert_eq!(file_name("positions"), "positions");
    }

    // See: the `-` rule gave `md:a:B` and `md/a/B` one `.snap` file.
    #[test]
    fn keys_the_old_rule_merged_get_two_names() {
        assert_eq!(legacy_name("md:a:B"), legacy_name("md/a/B"));
        assert_ne!(file_name("md:a:B"), file_name("md/a/B"));
        assert_eq!(key_of(&file_name("md/a/B")).as_deref(), Some("md/a/B"));
    }

    #[test]
    fn awkward_keys_are_safe_components() {
        for key in [
            "", ".", "..", ".hidden", "%", "%41", "a%2Fb", "/", "\\", "\0",
        ] {
            let name = file_name(key);
            assert!(!name.is_empty() && name != "." && name != ".." && !name.starts_with('.'));
            assert_eq!(key_of(&name).as_deref(), Some(key), "{key:?} as {name}");
        }
        assert_eq!(file_name(""), "%");
    }

    #[test]
    fn names_file_name_does_not_write_are_refused() {
        for name in [
            "", "%3a", "%41", "%%", "%4", "%G0", "a.b", "a/b", "%C3", "é",
        ] {
            assert_eq!(key_of(name), None, "{name:?}");
        }
    }

    #[test]
    fn legacy_rule_as_it_was() {
        assert_eq!(
            legacy_name("md:binance-spot:BTC_USDT"),
            "md-binance-spot-BTC_USDT"
        );
        assert_eq!(legacy_name("a é"), "a--");
    }

    fn key() -> impl Strategy<Value = String> {
        // Mostly the characters real keys use, with any other char mixed in.
        prop::collection::vec(
            prop_oneof![
                4 => prop::sample::select(vec!['a', 'B', '0', ':', '/', '-', '_', '.', '%', ' ']),
                1 => any::<char>(),
            ],
            0..24,
        )
        .prop_map(|v| v.into_iter().collect())
    }

    proptest! {
        #[test]
        fn distinct_keys_get_distinct_names(a in key(), b in key()) {
            prop_assume!(a != b);
            prop_assert_ne!(file_name(&a), file_name(&b));
        }

        // The keys the old rule merged: one unusual character swapped for another.
        #[test]
        fn keys_differing_in_one_unusual_char_get_distinct_names(
            a in key(),
            at in any::<prop::sample::Index>(),
            with in prop::sample::select(vec![':', '/', '.', ' ', '%', '\u{e9}', '@']),
        ) {
            let mut chars: Vec<char> = a.chars().collect();
            prop_assume!(!chars.is_empty());
            let i = at.index(chars.len());
            prop_assume!(chars[i] != with);
            chars[i] = with;
            let b: String = chars.into_iter().collect();
            prop_assert_ne!(file_name(&a), file_name(&b));
        }

        #[test]
        fn key_of_inverts_file_name(k in key()) {
            prop_assert_eq!(key_of(&file_name(&k)), Some(k));
        }

        #[test]
        fn names_are_single_safe_path_components(k in key()) {
            let name = file_name(&k);
            prop_assert!(!name.is_empty());
            prop_assert!(name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'%'));
            let path = std::path::Path::new(&name);
            let parts: Vec<_> = path.components().collect();
            prop_assert_eq!(parts.len(), 1);
            prop_assert!(matches!(parts[0], std::path::Component::Normal(_)));
            prop_assert!(!name.starts_with('.'));
        }

        #[test]
        fn key_of_accepts_only_what_file_name_writes(name in "[A-Za-z0-9%._-]{0,12}") {
            if let Some(k) = key_of(&name) {
                prop_assert_eq!(file_name(&k), name);
            }
        }
    }
}
