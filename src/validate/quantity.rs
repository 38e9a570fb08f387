//! Kubernetes quantities (`8Gi`, `512M`, `1.5Ti`, `1e9`).
//!
//! In: a quantity string. Out: its value in whole units (bytes for memory and
//! sizes), rounded up as the API server does, or why it is not a quantity.

use super::Collector;

/// Parses a quantity into whole units, rounding a fraction up. Negative
/// quantities and milli-units are refused: sizes are whole bytes.
pub fn parse(value: &str) -> Result<u128, String> {
    let text = value.trim();
    if text.is_empty() || text != value {
        return Err(format!("\"{value}\" is not a quantity"));
    }
    let split = text.find(|character: char| !(character.is_ascii_digit() || character == '.' || character == '+')).unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number = number.strip_prefix('+').unwrap_or(number);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 || number.contains('+') {
        return Err(format!("\"{value}\" is not a quantity"));
    }
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let multiplier: u128 = match suffix {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        "Ei" => 1 << 60,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "P" => 1_000_000_000_000_000,
        "E" => 1_000_000_000_000_000_000,
        exponent if exponent.starts_with(['e', 'E']) => {
            let power: u32 = exponent[1..].trim_start_matches('+').parse().map_err(|_| format!("\"{value}\" is not a quantity"))?;
            10u128.checked_pow(power).ok_or_else(|| format!("\"{value}\" is too large"))?
        }
        "m" | "n" | "u" => return Err(format!("\"{value}\" is a fraction of a unit; sizes are whole bytes")),
        _ => return Err(format!("\"{value}\" is not a quantity (unknown suffix \"{suffix}\")")),
    };
    let too_large = || format!("\"{value}\" is too large");
    let whole: u128 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| too_large())? };
    let mut total = whole.checked_mul(multiplier).ok_or_else(too_large)?;
    if !fraction.is_empty() {
        let digits = fraction.len().min(30) as u32;
        let numerator: u128 = fraction[..digits as usize].parse().map_err(|_| too_large())?;
        let denominator = 10u128.pow(digits);
        let scaled = numerator.checked_mul(multiplier).ok_or_else(too_large)?;
        total = total.checked_add(scaled.div_ceil(denominator)).ok_or_else(too_large)?;
    }
    Ok(total)
}

/// Checks that a field holds a positive quantity and returns its value.
pub(crate) fn check_positive(collector: &mut Collector, field: &str, value: &str) -> Option<u128> {
    match parse(value) {
        Ok(0) => {
            collector.push(field, format!("\"{value}\" must be greater than zero"));
            None
        }
        Ok(bytes) => Some(bytes),
        Err(message) => {
            collector.push(field, message);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn parses_binary_decimal_and_exponent_suffixes() {
        assert_eq!(parse("8Gi"), Ok(8 << 30));
        assert_eq!(parse("512Mi"), Ok(512 << 20));
        assert_eq!(parse("1.5Gi"), Ok(3 << 29));
        assert_eq!(parse("2G"), Ok(2_000_000_000));
        assert_eq!(parse("1e3"), Ok(1000));
        assert_eq!(parse("1024"), Ok(1024));
        assert_eq!(parse("0.5"), Ok(1));
    }

    #[test]
    fn refuses_what_is_not_a_whole_quantity() {
        for bad in ["", "Gi", "8 Gi", "8GB", "-1Gi", "1.2.3", "100m", " 8Gi", "99999999999999999999999999999999999999999Ei"] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
