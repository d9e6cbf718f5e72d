//! Human byte sizes in configs and on command lines: `4096`, `64KiB`, `64MiB`, `1GiB`, `1.5GB`.

/// Why a size was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid size '{0}': use a number with an optional unit B, KiB, MiB, GiB, TiB, KB, MB, GB or TB")]
pub struct SizeError(String);

/// Parses a size in bytes.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return Err(SizeError(text.into())),
    };
    let value: f64 = number.parse().map_err(|_| SizeError(text.into()))?;
    let bytes = value * factor as f64;
    if !bytes.is_finite()
        || bytes < 0.0
        || bytes > u64::MAX as f64
        || (unit.is_empty() && number.contains('.'))
    {
        return Err(SizeError(text.into()));
    }
    Ok(bytes.round() as u64)
}

/// Formats bytes with a binary unit.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_refuses_nonsense() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("64 MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1.5GB"), Ok(1_500_000_000));
        for bad in ["", "MiB", "12XB", "-5", "1.5", "1e3", "99999999999999TiB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(format_size(1536), "1.5 KiB");
        assert_eq!(format_size(10), "10 B");
    }
}
