//! Exact decimals: an integer mantissa and a count of fractional digits, as exchanges send
//! prices and quantities. Written as strings (`"65432.10"`) in every store; parsed without
//! rounding.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tapedeck_guest::codec::Decimal;

/// A decimal as written: mantissa and number of fractional digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Dec(pub Decimal);

impl Dec {
    pub fn new(mantissa: i64, scale: u8) -> Self {
        Dec(Decimal::new(mantissa, scale))
    }

    pub fn scale(self) -> u8 {
        self.0.scale
    }

    /// The mantissa at a scale at least this one's (exact; `None` on overflow).
    pub fn at(self, scale: u8) -> Option<i64> {
        let up = scale.checked_sub(self.0.scale)? as u32;
        self.0.mantissa.checked_mul(10i64.checked_pow(up)?)
    }

    pub fn to_f64(self) -> f64 {
        self.0.to_f64()
    }
}

impl fmt::Display for Dec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Decimal { mantissa, scale } = self.0;
        if scale == 0 {
            return write!(f, "{mantissa}");
        }
        let digits = mantissa.unsigned_abs().to_string();
        let s = scale as usize;
        let (int, frac) = if digits.len() > s {
            digits.split_at(digits.len() - s)
        } else {
            ("0", digits.as_str())
        };
        let sign = if mantissa < 0 { "-" } else { "" };
        write!(f, "{sign}{int}.{frac:0>s$}")
    }
}

impl fmt::Debug for Dec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dec({self})")
    }
}

impl FromStr for Dec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("not a decimal: {s:?}");
        let (neg, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        if int.is_empty() && frac.is_empty()
            || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let scale = u8::try_from(frac.len())
            .ok()
            .filter(|s| *s <= 18)
            .ok_or_else(bad)?;
        let mut m: i64 = 0;
        for b in int.bytes().chain(frac.bytes()) {
            m = m
                .checked_mul(10)
                .and_then(|m| m.checked_add((b - b'0') as i64))
                .ok_or_else(|| format!("decimal out of range: {s:?}"))?;
        }
        Ok(Dec::new(if neg { -m } else { m }, scale))
    }
}

impl Serialize for Dec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Dec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal string like \"65432.10\" (or an integer)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Dec, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Dec, E> {
                Ok(Dec::new(v, 0))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Dec, E> {
                i64::try_from(v)
                    .map(|v| Dec::new(v, 0))
                    .map_err(|_| E::custom("integer out of range"))
            }
        }
        d.deserialize_any(V)
    }
}
