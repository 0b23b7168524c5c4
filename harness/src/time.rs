//! Times: event and ingest times are `i64` ns since the Unix epoch, UTC; these helpers turn them
//! into the calendar days files are partitioned by and the RFC 3339 text people read, and back.
//! Pure arithmetic (no clock, no time zone database).

/// `YYYY-MM-DD` (UTC) of a time in ns since the epoch (Howard Hinnant's civil_from_days).
pub fn day_of(ns: i64) -> String {
    let days = ns.div_euclid(86_400_000_000_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` for a time in ns since the epoch.
pub fn format_ns(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let sod = secs.rem_euclid(86_400);
    format!(
        "{}T{:02}:{:02}:{:02}.{:09}Z",
        day_of(ns),
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
        ns.rem_euclid(1_000_000_000)
    )
}

/// Days in month `m` (1-12) of year `y` (proleptic Gregorian).
fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fffffffff]Z` to ns since the epoch. `None` for anything else, including
/// impossible dates and times (February 31, hour 24, minute 60, a leap second) and years outside
/// 1678-2261, which do not fit an i64 of ns.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.splitn(3, ':').map(|x| x.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    let valid = (1678..=2261).contains(&y)
        && (1..=12).contains(&m)
        && (1..=days_in_month(y, m)).contains(&day)
        && (0..24).contains(&hh)
        && (0..60).contains(&mm)
        && (0..60).contains(&ss);
    if !valid {
        return None;
    }
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    // days_from_civil (Howard Hinnant)
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (days * 86_400 + hh * 3600 + mm * 60 + ss)
        .checked_mul(1_000_000_000)?
        .checked_add(nanos)
}

/// A span of time as ns: a number with a unit, `ns`, `us`, `ms`, `s`, `m`, `h` or `d`
/// (`500ms`, `1m`, `4h`); positive.
pub fn parse_span(s: &str) -> Option<i64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: i64 = num.parse().ok()?;
    let per = match unit {
        "ns" => 1,
        "us" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "d" => 86_400_000_000_000,
        _ => return None,
    };
    n.checked_mul(per).filter(|v| *v > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_times_round_trip() {
        assert_eq!(day_of(0), "1970-01-01");
        assert_eq!(day_of(1_723_075_200_000_000_000), "2024-08-08");
        assert_eq!(day_of(951_782_400_000_000_000), "2000-02-29");
        assert_eq!(day_of(-1), "1969-12-31");
        let t = 1_723_161_254_500_000_000;
        assert_eq!(format_ns(t), "2024-08-08T23:54:14.500000000Z");
        assert_eq!(parse_rfc3339(&format_ns(t)), Some(t));
        assert_eq!(parse_rfc3339("2024-08-08T23:54:14"), None);
    }

    #[test]
    fn impossible_dates_and_times_are_refused_not_rolled_over() {
        // Before: 2024-02-31 was read as March 2.
        for bad in [
            "2024-02-31T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-00-10T00:00:00Z",
            "2024-08-00T00:00:00Z",
            "2024-08-08T24:00:00Z",
            "2024-08-08T23:60:00Z",
            "2024-08-08T23:59:60Z",
            "2024-08-08T-1:00:00Z",
            "9999-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        assert!(parse_rfc3339("2024-02-29T23:59:59.999999999Z").is_some());
        assert!(parse_rfc3339("2000-02-29T00:00:00Z").is_some());
        assert_eq!(parse_rfc3339("1900-02-29T00:00:00Z"), None);
    }

    #[test]
    fn spans_parse_with_units() {
        assert_eq!(parse_span("1m"), Some(60_000_000_000));
        assert_eq!(parse_span("250ms"), Some(250_000_000));
        assert_eq!(parse_span("2d"), Some(172_800_000_000_000));
        for bad in ["", "m", "0s", "5", "1.5s", "3w"] {
            assert_eq!(parse_span(bad), None, "{bad}");
        }
    }
}
