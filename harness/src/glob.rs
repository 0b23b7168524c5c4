//! Stream-key globs: `*` matches any run of characters, `?` one character; everything else
//! matches itself. Used by every command that takes `--streams`.

/// Matches a stream key against a glob with `*` (any run) and `?` (one character).
pub fn glob_match(pattern: &str, key: &str) -> bool {
    fn m(p: &[u8], k: &[u8]) -> bool {
        match (p.first(), k.first()) {
            (None, None) => true,
            (Some(b'*'), _) => m(&p[1..], k) || (!k.is_empty() && m(p, &k[1..])),
            (Some(b'?'), Some(_)) => m(&p[1..], &k[1..]),
            (Some(a), Some(b)) if a == b => m(&p[1..], &k[1..]),
            _ => false,
        }
    }
    m(pattern.as_bytes(), key.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("md:*", "md:binance-spot:BTCUSDT"));
        assert!(glob_match("*BTC*", "md:binance-spot:BTCUSDT"));
        assert!(glob_match("md:binance-?pot:*", "md:binance-spot:X"));
        assert!(!glob_match("md:*", "orders:1"));
        assert!(glob_match("*", ""));
    }
}
