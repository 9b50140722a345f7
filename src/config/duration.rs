//! Durations as written in the configuration (`"15m"`, `"2s"`, `"1h 30m"`), parsed with
//! humantime. A bare number is refused everywhere: `timeout = 30` could mean seconds or
//! milliseconds, and guessing wrong is worse than asking.

use std::time::Duration;

/// What every duration error ends with, so the operator sees the expected form.
pub(crate) const HINT: &str = "write a duration like \"15m\", \"2s\" or \"1h 30m\"";

/// Parses a humantime duration; the error is a complete sentence for a [`super::ConfigError`].
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(format!("empty duration; {HINT}"));
    }
    if trimmed.parse::<f64>().is_ok() {
        return Err(format!("\"{trimmed}\" has no unit; {HINT}"));
    }
    humantime::parse_duration(trimmed)
        .map_err(|e| format!("\"{trimmed}\" is not a duration ({e}); {HINT}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humantime_forms_are_accepted() {
        assert_eq!(parse("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse(" 2s ").unwrap(), Duration::from_secs(2));
    }

    #[test]
    fn a_number_without_a_unit_is_refused_with_the_expected_form() {
        let err = parse("30").unwrap_err();
        assert!(err.contains("no unit") && err.contains("\"15m\""), "{err}");
    }

    #[test]
    fn an_unknown_unit_is_refused_with_the_expected_form() {
        let err = parse("15 mintues").unwrap_err();
        assert!(
            err.contains("not a duration") && err.contains("\"15m\""),
            "{err}"
        );
    }
}
