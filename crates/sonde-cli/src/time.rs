//! Times in and out: what `--since` / `--until` accept, the zone times are printed
//! in (`--tz`), and durations as people read them.

use sonde::Timestamp;

use crate::exit;

/// Parses a time: RFC 3339 (`2026-01-01T10:00:00Z`), a date-time without an offset
/// (`2026-01-01T10:00`, `2026-01-01 10:00:00`) or a date (`2026-01-01`, its
/// midnight) in `zone`, or a span back from now (`90s`, `30m`, `12h`, `7d`, `2w`).
pub fn parse_time(text: &str, zone: &Zone) -> anyhow::Result<Timestamp> {
    let text = text.trim();
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return Ok(from_jiff(t));
    }
    if let Ok(t) = text.parse::<jiff::civil::DateTime>()
        && let Ok(zoned) = t.to_zoned(zone.0.clone())
    {
        return Ok(from_jiff(zoned.timestamp()));
    }
    if let Ok(d) = text.parse::<jiff::civil::Date>()
        && let Ok(zoned) = d.to_zoned(zone.0.clone())
    {
        return Ok(from_jiff(zoned.timestamp()));
    }
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let seconds: i64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => 0,
    };
    match number.parse::<i64>() {
        Ok(n) if seconds > 0 && n >= 0 => Ok(Timestamp::from_micros(
            Timestamp::now()
                .as_micros()
                .saturating_sub(n.saturating_mul(seconds).saturating_mul(1_000_000)),
        )),
        _ => Err(exit::usage(format!(
            "invalid time {text:?}: expected a date (2026-01-01), a date-time (2026-01-01T10:00, or RFC 3339) or a span back from now (30m, 12h, 7d)"
        ))),
    }
}

fn from_jiff(t: jiff::Timestamp) -> Timestamp {
    Timestamp::from_micros(t.as_microsecond())
}

/// The time zone times are printed in, and dates without an offset are read in.
#[derive(Clone, Debug)]
pub struct Zone(jiff::tz::TimeZone);

impl Default for Zone {
    /// The local zone (`TZ`, else the system's).
    fn default() -> Self {
        Zone(jiff::tz::TimeZone::system())
    }
}

impl Zone {
    /// The zone `--tz` names (an IANA name such as `Europe/Paris`, or `UTC`), else the
    /// local one.
    pub fn parse(name: Option<&str>) -> anyhow::Result<Self> {
        match name {
            None => Ok(Zone::default()),
            Some(name) if name.eq_ignore_ascii_case("utc") || name == "Z" => {
                Ok(Zone(jiff::tz::TimeZone::UTC))
            }
            Some(name) => jiff::tz::TimeZone::get(name).map(Zone).map_err(|_| {
                exit::usage(format!(
                    "unknown time zone {name:?}: expected UTC or an IANA name such as Europe/Paris"
                ))
            }),
        }
    }

    /// `t` in this zone, formatted with `strftime`'s `format`.
    fn format(&self, t: Timestamp, format: &str) -> String {
        match jiff::Timestamp::from_microsecond(t.as_micros()) {
            Ok(t) => t.to_zoned(self.0.clone()).strftime(format).to_string(),
            Err(_) => t.to_string(),
        }
    }

    /// `2026-11-22 05:26:00 UTC`, in this zone (its abbreviation last).
    pub fn when(&self, t: Timestamp) -> String {
        self.format(t, "%Y-%m-%d %H:%M:%S %Z")
    }

    /// `05:26:00.123`, in this zone (for timelines under a header naming it).
    pub fn time_of_day(&self, t: Timestamp) -> String {
        self.format(t, "%H:%M:%S%.3f")
    }

    /// The zone's abbreviation at `t` (`UTC`, `CET`).
    pub fn abbreviation(&self, t: Timestamp) -> String {
        self.format(t, "%Z")
    }
}

/// Parses a span of time for a flag: `500ms`, `5s`, `2m`, `1h`, `30d`, `2w`, or bare
/// seconds (`5`).
/// Zero and negative spans are refused (a limit of nothing would refuse everything).
pub fn parse_span(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let per_unit = match unit.trim() {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3_600.0,
        "d" => 86_400.0,
        "w" => 604_800.0,
        _ => f64::NAN,
    };
    match number.parse::<f64>() {
        Ok(n) if per_unit.is_finite() && n > 0.0 && (n * per_unit) < 1e9 => {
            Ok(std::time::Duration::from_secs_f64(n * per_unit))
        }
        _ => Err(format!(
            "invalid duration {text:?}: expected a positive span such as 500ms, 5s, 2m, 1h or 30d"
        )),
    }
}

/// A duration as people read it: `850ms`, `4.2s`, `5m 26s`, `1h 02m`, `2d 03h`.
pub fn duration(ms: f64) -> String {
    if !ms.is_finite() || ms < 0.0 {
        return "-".to_owned();
    }
    if ms < 1_000.0 {
        return format!("{ms:.0}ms");
    }
    if ms < 60_000.0 {
        return format!("{:.1}s", ms / 1_000.0);
    }
    let seconds = (ms / 1_000.0).round() as u64;
    let (days, hours, minutes) = (seconds / 86_400, seconds / 3_600 % 24, seconds / 60 % 60);
    if days > 0 {
        format!("{days}d {hours:02}h")
    } else if hours > 0 {
        format!("{hours}h {minutes:02}m")
    } else {
        format!("{minutes}m {:02}s", seconds % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_for_flags_take_a_unit_or_seconds_and_refuse_nothing() {
        use std::time::Duration;
        assert_eq!(parse_span("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_span("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_span("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_span("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_span("1.5h"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_span("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_span("2w"), Ok(Duration::from_secs(14 * 86_400)));
        for bad in ["0s", "-1s", "5y", "", "s", "1e99s"] {
            let err = parse_span(bad).unwrap_err();
            assert!(err.starts_with("invalid duration"), "{bad}: {err}");
        }
    }

    #[test]
    fn durations_read_like_durations() {
        assert_eq!(duration(850.0), "850ms");
        assert_eq!(duration(4_240.0), "4.2s");
        assert_eq!(duration(326_100.0), "5m 26s");
        assert_eq!(duration(3_720_000.0), "1h 02m");
        assert_eq!(duration(2.0 * 86_400_000.0 + 3.0 * 3_600_000.0), "2d 03h");
    }

    #[test]
    fn times_are_dates_date_times_or_spans() -> anyhow::Result<()> {
        let utc = Zone::parse(Some("UTC"))?;
        let midnight = parse_time("2026-01-01", &utc)?;
        assert_eq!(midnight.to_string(), "2026-01-01T00:00:00.000000Z");
        assert_eq!(
            parse_time("2026-01-01T10:00", &utc)?.as_micros() - midnight.as_micros(),
            10 * 3_600 * 1_000_000
        );
        assert_eq!(
            parse_time("2026-01-01T10:00:00+01:00", &utc)?.as_micros() - midnight.as_micros(),
            9 * 3_600 * 1_000_000
        );
        let paris = Zone::parse(Some("Europe/Paris"))?;
        assert_eq!(
            midnight.as_micros() - parse_time("2026-01-01", &paris)?.as_micros(),
            3_600 * 1_000_000
        );
        let week = Timestamp::now().as_micros() - parse_time("7d", &utc)?.as_micros();
        assert!((week - 7 * 86_400 * 1_000_000).abs() < 60 * 1_000_000);
        assert!(parse_time("yesterday", &utc).is_err());
        assert!(Zone::parse(Some("Mars/Olympus")).is_err());
        Ok(())
    }
}
