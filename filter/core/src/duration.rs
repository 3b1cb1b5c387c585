//! Durations as operators write them in the plugin configuration: `250ms`, `10s`, `5m`.
//!
//! Istio and Envoy spell durations as strings with a unit; the filter accepts the same
//! spelling (also `h` and decimals such as `1.5s`) and keeps whole milliseconds, the
//! resolution of every timer it sets.

use std::fmt;

/// The longest duration the configuration accepts (one day); anything longer is a typo.
pub const MAX_MILLIS: u64 = 24 * 60 * 60 * 1000;

/// Parses `250ms`, `10s`, `1.5s`, `5m`, `1h` into milliseconds.
pub fn parse_millis(text: &str) -> Result<u64, String> {
    let bad = || format!("must be a duration such as \"250ms\", \"10s\" or \"5m\", got {text:?}");
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let scale: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(bad()),
    };
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return Err(bad());
    }
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if fraction.contains('.') {
        return Err(bad());
    }
    let whole: u64 = whole.parse().map_err(|_| bad())?;
    let mut millis = whole.checked_mul(scale).ok_or_else(bad)?;
    // Fractional digits: accumulate exactly, then drop what is below a millisecond.
    let mut unit_part = scale;
    for digit in fraction.bytes() {
        unit_part /= 10;
        millis = millis.saturating_add(u64::from(digit - b'0') * unit_part);
        if unit_part == 0 {
            break;
        }
    }
    if millis > MAX_MILLIS {
        return Err(format!("must be at most 24h, got {text:?}"));
    }
    Ok(millis)
}

/// Writes milliseconds back in the configuration's spelling (`30s`, `1500ms`, `5m`).
pub struct Millis(pub u64);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        if ms != 0 && ms.is_multiple_of(3_600_000) {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms != 0 && ms.is_multiple_of(60_000) {
            write!(f, "{}m", ms / 60_000)
        } else if ms.is_multiple_of(1_000) {
            write!(f, "{}s", ms / 1_000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_spellings_of_the_configuration() {
        assert_eq!(parse_millis("250ms"), Ok(250));
        assert_eq!(parse_millis("10s"), Ok(10_000));
        assert_eq!(parse_millis("5m"), Ok(300_000));
        assert_eq!(parse_millis("1h"), Ok(3_600_000));
        assert_eq!(parse_millis("1.5s"), Ok(1_500));
        assert_eq!(parse_millis("0.25m"), Ok(15_000));
        assert_eq!(parse_millis("0s"), Ok(0));
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        for bad in [
            "", "10", "s", "10 s", "-1s", "1.s", ".5s", "1..5s", "10sec", "1e3ms", "25h",
        ] {
            assert!(parse_millis(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(
            parse_millis("10").unwrap_err(),
            "must be a duration such as \"250ms\", \"10s\" or \"5m\", got \"10\""
        );
    }

    #[test]
    fn displays_in_the_largest_whole_unit() {
        assert_eq!(Millis(30_000).to_string(), "30s");
        assert_eq!(Millis(1_500).to_string(), "1500ms");
        assert_eq!(Millis(300_000).to_string(), "5m");
        assert_eq!(Millis(7_200_000).to_string(), "2h");
        assert_eq!(Millis(0).to_string(), "0s");
    }
}
