//! Absolute times as RFC 3339 in UTC (`2026-11-29T15:04:05.123Z`), for export files
//! that a person or jq can read. Days from the civil calendar by Howard Hinnant's
//! algorithms (no time-zone database needed for UTC).

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format_ms(ms: i64) -> String {
    let (days, in_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, m, d) = civil_from_days(days);
    let s = in_day / 1000;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        in_day % 1000
    )
}

/// Reads `YYYY-MM-DDTHH:MM:SS[.fff]Z` (UTC only) back into milliseconds.
pub fn parse_ms(text: &str) -> Result<i64, String> {
    let bad = || format!("bad time {text:?}: expected UTC as YYYY-MM-DDTHH:MM:SS[.mmm]Z");
    let body = text.strip_suffix('Z').ok_or_else(bad)?;
    let (date, time) = body.split_once('T').ok_or_else(bad)?;
    let (hms, fraction) = time.split_once('.').unwrap_or((time, ""));
    let field = |s: &str, len: usize| -> Result<i64, String> {
        if s.len() != len || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    let dp: Vec<&str> = date.split('-').collect();
    let tp: Vec<&str> = hms.split(':').collect();
    if dp.len() != 3 || tp.len() != 3 || fraction.len() > 9 {
        return Err(bad());
    }
    // Four digits, or more for the years past 9999 that format_ms writes (a deadline
    // may be anything up to i64::MAX ms: the year 292,278,994).
    let year_len = dp[0].len().clamp(4, 9);
    let (y, mo, d) = (field(dp[0], year_len)?, field(dp[1], 2)?, field(dp[2], 2)?);
    let (h, mi, s) = (field(tp[0], 2)?, field(tp[1], 2)?, field(tp[2], 2)?);
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = match mo {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if !(1..=12).contains(&mo) || !(1..=month_days).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return Err(bad());
    }
    let millis = if fraction.is_empty() {
        0
    } else {
        let digits = field(fraction, fraction.len())?;
        digits * 1000 / 10i64.pow(fraction.len() as u32)
    };
    let seconds =
        i128::from(days_from_civil(y, mo, d)) * 86400 + i128::from(h * 3600 + mi * 60 + s);
    i64::try_from(seconds * 1000 + i128::from(millis))
        .map_err(|_| format!("bad time {text:?}: later than any time BackLite keeps"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_through_rfc3339() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(1_795_964_645_123), "2026-11-29T15:04:05.123Z");
        for ms in [0, 1, 951_782_400_000, 1_795_964_645_123, 4_102_444_800_999] {
            assert_eq!(parse_ms(&format_ms(ms)).unwrap(), ms);
        }
        assert_eq!(parse_ms("2026-11-29T15:04:05Z").unwrap(), 1_795_964_645_000);
        assert!(parse_ms("2026-11-29 15:04:05").is_err());
        assert!(parse_ms("2026-13-01T00:00:00Z").is_err());
        assert!(parse_ms("2026-02-29T00:00:00Z").is_err());
        assert!(parse_ms("2100-02-29T00:00:00Z").is_err());
        assert!(parse_ms("2026-04-31T00:00:00Z").is_err());
        assert!(parse_ms("2000-02-29T00:00:00Z").is_ok());
        assert!(parse_ms("2028-02-29T00:00:00Z").is_ok());
        // Past the year 9999, as far as a deadline goes, and no further.
        for ms in [253_402_300_800_000, 900_000_000_000_000, i64::MAX] {
            assert_eq!(parse_ms(&format_ms(ms)).unwrap(), ms, "{}", format_ms(ms));
        }
        assert_eq!(format_ms(i64::MAX), "292278994-08-17T07:12:55.807Z");
        assert!(parse_ms("292278994-08-17T07:12:55.808Z").is_err());
        assert!(parse_ms("999999999-01-01T00:00:00Z").is_err());
        assert!(parse_ms("0999999999-01-01T00:00:00Z").is_err());
    }
}
