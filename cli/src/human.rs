//! Durations and sizes the way people write them: `10m`, `1h30m`, `1.5 GiB`.

use std::time::Duration;

/// The length of the number at the start of `s`: digits and points, then an exponent
/// (`e3`, `E-2`) only where one follows (so that `1EiB` is one exbibyte).
fn number_len(s: &str) -> usize {
    let b = s.as_bytes();
    let mut at = b
        .iter()
        .take_while(|c| c.is_ascii_digit() || **c == b'.')
        .count();
    if at > 0 && matches!(b.get(at), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(b.get(at + 1), Some(b'+' | b'-')));
        let digits = b[(at + 1 + sign).min(b.len())..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits > 0 {
            at += 1 + sign + digits;
        }
    }
    at
}

const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// Reads `500ms`, `90s`, `10m`, `1.5h`, `2d`, `1w` or sums of them (`1h30m`); `0`
/// needs no unit.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad =
        |why: &str| format!("bad duration {text:?}: {why} (examples: 500ms, 90s, 10m, 1h30m, 2d)");
    let s = text.trim();
    if s.is_empty() {
        return Err(bad("it is empty"));
    }
    if s.starts_with('-') {
        return Err(bad("a time to live cannot be negative"));
    }
    // Zero is zero in any unit, so it needs none, however it is written (`0`, `0.0`).
    if number_len(s) == s.len() && s.parse::<f64>() == Ok(0.0) {
        return Ok(Duration::ZERO);
    }
    // Whole nanoseconds, each term rounded on its own: a decimal that binary cannot
    // hold (0.57 is 0.569999...) would otherwise lose a nanosecond, and with it, once
    // cut to milliseconds, a millisecond.
    let mut total = 0u128;
    let mut rest = s;
    while !rest.is_empty() {
        let (number, after) = rest.split_at(number_len(rest));
        let value: f64 = number
            .parse()
            .map_err(|_| bad("a number must come before each unit"))?;
        let after = after.trim_start();
        let unit_len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let nanos = match unit {
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86400e9,
            "w" => 7.0 * 86400e9,
            "" => return Err(bad("a unit is missing")),
            _ => return Err(bad(&format!("unknown unit {unit:?}"))),
        };
        let term = value * nanos;
        if !term.is_finite() || term > 1e21 {
            return Err(bad("it is too long"));
        }
        // A lifetime shorter than a nanosecond is still one: rounded to none, it would
        // be zero, the library's "already expired".
        total += (term.round() as u128).max(u128::from(term > 0.0));
        rest = after.trim_start();
    }
    if total > 1_000_000_000_000 * NANOS_PER_SECOND {
        return Err(bad("it is too long"));
    }
    Ok(Duration::new(
        (total / NANOS_PER_SECOND) as u64,
        (total % NANOS_PER_SECOND) as u32,
    ))
}

/// Writes a duration with its two largest units: `850ms`, `45s`, `10m`, `1h30m`, `2d3h`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = d.as_secs();
    let units = [
        ("w", 7 * 86400),
        ("d", 86400),
        ("h", 3600),
        ("m", 60),
        ("s", 1),
    ];
    let Some(first) = units.iter().position(|&(_, n)| s >= n) else {
        return format!("{s}s");
    };
    let (u1, n1) = units[first];
    let mut out = format!("{}{u1}", s / n1);
    if let Some(&(u2, n2)) = units.get(first + 1) {
        let second = (s % n1) / n2;
        if second > 0 {
            out.push_str(&format!("{second}{u2}"));
        }
    }
    out
}

/// Reads `512`, `64KiB`, `1.5 GiB`, `10MB`, `1e6` (KB, MB, ... EB are powers of 1000;
/// K, KiB, M, MiB, ... E, EiB powers of 1024), up to `i64::MAX` bytes, exactly: a
/// float holds 53 bits, so `9223372036854775807` read as one was 2^63, too large, and
/// `9007199254740993` was a byte short.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = |why: &str| format!("bad size {text:?}: {why} (examples: 512, 64KiB, 1.5 GiB, 10MB)");
    let s = text.trim();
    let (number, unit) = s.split_at(number_len(s));
    let value: f64 = number
        .parse()
        .map_err(|_| bad("it must start with a number"))?;
    let factor: u128 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000u128.pow(2),
        "gb" => 1000u128.pow(3),
        "tb" => 1000u128.pow(4),
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "pb" => 1000u128.pow(5),
        "eb" => 1000u128.pow(6),
        "p" | "pib" => 1 << 50,
        "e" | "eib" => 1 << 60,
        other => return Err(bad(&format!("unknown unit {other:?}"))),
    };
    let too_large = || bad("it is too large");
    if let Some(bytes) = exact_bytes(number, factor) {
        return u64::try_from(bytes)
            .ok()
            .filter(|&b| b <= i64::MAX as u64)
            .ok_or_else(too_large);
    }
    // More digits than 128 bits hold: as a float, only to say it is too large.
    let bytes = value * factor as f64;
    if !bytes.is_finite() || bytes >= i64::MAX as f64 {
        return Err(too_large());
    }
    Ok(bytes.round() as u64)
}

/// `number` (digits with at most one point, then an exponent, as `number_len` found
/// it) times `factor`, rounded to a whole byte, half up; None when it does not fit
/// 128 bits.
fn exact_bytes(number: &str, factor: u128) -> Option<u128> {
    let (mantissa, exponent) = match number.find(['e', 'E']) {
        Some(at) => (&number[..at], number[at + 1..].parse::<i32>().ok()?),
        None => (number, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut digits = 0u128;
    for c in whole.bytes().chain(fraction.bytes()) {
        if !c.is_ascii_digit() {
            return None;
        }
        digits = digits.checked_mul(10)?.checked_add(u128::from(c - b'0'))?;
    }
    let scaled = digits.checked_mul(factor)?;
    if scaled == 0 {
        return Some(0);
    }
    let power = exponent.checked_sub(i32::try_from(fraction.len()).ok()?)?;
    if power >= 0 {
        return scaled.checked_mul(10u128.checked_pow(power.unsigned_abs())?);
    }
    // A divisor past 128 bits is larger than `scaled`: less than half a byte.
    let Some(divisor) = 10u128.checked_pow(power.unsigned_abs()) else {
        return Some(0);
    };
    let (quotient, remainder) = (scaled / divisor, scaled % divisor);
    Some(quotient + u128::from(remainder >= divisor - remainder))
}

/// Writes a size in binary units: `512 B`, `24 KiB`, `1.5 GiB`.
pub fn format_size(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else if (value - value.round()).abs() < 0.05 {
        format!("{:.0} {}", value, units[unit])
    } else {
        format!("{:.1} {}", value, units[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_and_write_the_human_way() {
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("0.57s").unwrap(), Duration::from_millis(570));
        assert_eq!(
            parse_duration("1.005s").unwrap(),
            Duration::from_millis(1005)
        );
        assert_eq!(parse_duration("0.5ms").unwrap(), Duration::from_micros(500));
        assert_eq!(
            parse_duration("1m0.5s").unwrap(),
            Duration::from_millis(60_500)
        );
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("m").is_err());
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("0.0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("1e-12s").unwrap(), Duration::from_nanos(1));
        assert_eq!(parse_duration("1e3s").unwrap(), Duration::from_secs(1000));
        assert!(parse_duration("-1s").unwrap_err().contains("negative"));
        assert!(parse_duration("1e30d").unwrap_err().contains("too long"));
        assert_eq!(format_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(
            format_duration(Duration::from_secs(86400 * 2 + 3600 * 3 + 5)),
            "2d3h"
        );
        assert_eq!(format_duration(Duration::from_secs(600)), "10m");
    }

    #[test]
    fn sizes_read_and_write_the_human_way() {
        assert_eq!(parse_size("1.5 GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("10MB").unwrap(), 10_000_000);
        assert_eq!(parse_size("64k").unwrap(), 65536);
        assert_eq!(parse_size("512").unwrap(), 512);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("1 XB").is_err());
        assert_eq!(parse_size("1e3").unwrap(), 1000);
        assert_eq!(parse_size("2 PiB").unwrap(), 2 << 50);
        assert_eq!(parse_size("1EB").unwrap(), 1_000_000_000_000_000_000);
        assert!(parse_size("1e30 GiB").unwrap_err().contains("too large"));
        assert!(parse_size("8 EiB").unwrap_err().contains("too large"));
        // Exactly, to the byte, beyond what a float holds.
        assert_eq!(parse_size("9223372036854775807").unwrap(), i64::MAX as u64);
        assert_eq!(
            parse_size("9007199254740993").unwrap(),
            9_007_199_254_740_993
        );
        assert!(parse_size("9223372036854775808")
            .unwrap_err()
            .contains("too large"));
        assert_eq!(
            parse_size("7.99EiB").unwrap(),
            ((799u128 << 60) / 100) as u64
        );
        assert_eq!(parse_size("0.5").unwrap(), 1);
        assert_eq!(parse_size("0.49").unwrap(), 0);
        assert_eq!(parse_size("1.5e-3 KiB").unwrap(), 2);
        assert_eq!(parse_size("1e-400").unwrap(), 0);
        assert_eq!(parse_size(".5k").unwrap(), 512);
        assert!(parse_size("1e400").unwrap_err().contains("too large"));
        assert!(parse_size("123456789012345678901234567890123456789012")
            .unwrap_err()
            .contains("too large"));
        for bytes in [1 << 50, 3 << 49, 5 << 60] {
            let shown = format_size(bytes);
            assert_eq!(parse_size(&shown).unwrap(), bytes, "{shown}");
        }
        assert_eq!(format_size(512), "512 B");
        assert_eq!(format_size(3 << 29), "1.5 GiB");
        assert_eq!(format_size(1 << 30), "1 GiB");
    }
}
