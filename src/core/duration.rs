//! Durations as users write them in specs and config (`30s`, `5m`, `1h30m`, `0s`).

use std::time::Duration;

/// Parses a duration such as `30s`, `5m`, `1h30m`, `500ms` or `0s`.
pub fn parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(s).map_err(|e| format!("`{s}` is not a duration ({e}); write it like 30s, 5m or 1h30m"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubernetes_style_durations() {
        assert_eq!(parse("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
        assert_eq!(parse("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
    }

    #[test]
    fn refuses_garbage_with_a_hint() {
        let err = parse("five minutes").unwrap_err();
        assert!(err.contains("30s, 5m or 1h30m"), "{err}");
        assert!(parse("-5s").is_err());
        assert!(parse("").is_err());
    }
}
