//! Timestamps with microsecond precision, the precision every backend keeps.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A UTC instant with microsecond precision.
///
/// Microseconds are what PostgreSQL's `TIMESTAMPTZ` keeps, so a timestamp is the same
/// value in every backend. In JSON it is an RFC 3339 string with six fractional digits
/// (`2026-11-22T05:26:00.123456Z`); on input any RFC 3339 offset and precision is
/// accepted (finer digits are truncated), and so is a number of Unix seconds.
///
/// ```
/// use sonde_model::Timestamp;
/// let t: Timestamp = "2026-11-22T05:26:00.1234567+01:00".parse().unwrap();
/// assert_eq!(t.to_string(), "2026-11-22T04:26:00.123456Z");
/// assert_eq!(Timestamp::from_micros(t.as_micros()), t);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// A string that is not an RFC 3339 timestamp.
///
/// ```
/// use sonde_model::Timestamp;
/// assert!("yesterday".parse::<Timestamp>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timestamp {input:?}: expected RFC 3339, e.g. 2026-11-22T05:26:00Z")]
pub struct TimestampError {
    input: String,
}

impl Timestamp {
    /// The current time, truncated to microseconds.
    ///
    /// ```
    /// let now = sonde_model::Timestamp::now();
    /// assert!(now.as_micros() > 0);
    /// ```
    pub fn now() -> Self {
        Self(Utc::now().timestamp_micros())
    }

    /// The instant `micros` microseconds after the Unix epoch.
    ///
    /// ```
    /// let t = sonde_model::Timestamp::from_micros(1_000_000);
    /// assert_eq!(t.to_string(), "1970-01-01T00:00:01.000000Z");
    /// ```
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// Microseconds since the Unix epoch.
    ///
    /// ```
    /// assert_eq!(sonde_model::Timestamp::from_micros(7).as_micros(), 7);
    /// ```
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// Converts a chrono time, truncating to microseconds.
    ///
    /// ```
    /// let t = sonde_model::Timestamp::from_datetime(chrono::DateTime::UNIX_EPOCH);
    /// assert_eq!(t.as_micros(), 0);
    /// ```
    pub fn from_datetime(time: DateTime<Utc>) -> Self {
        Self(time.timestamp_micros())
    }

    /// This instant as a chrono time.
    ///
    /// ```
    /// let t = sonde_model::Timestamp::from_micros(0);
    /// assert_eq!(t.to_datetime(), chrono::DateTime::UNIX_EPOCH);
    /// ```
    pub fn to_datetime(self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.0).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Milliseconds from `earlier` to `self` (negative when `earlier` is later).
    ///
    /// ```
    /// use sonde_model::Timestamp;
    /// assert_eq!(Timestamp::from_micros(2_500).millis_since(Timestamp::from_micros(0)), 2.5);
    /// ```
    pub fn millis_since(self, earlier: Timestamp) -> f64 {
        (self.0 - earlier.0) as f64 / 1000.0
    }

    /// The earliest instant a timestamp may be: 0001-01-01T00:00:00Z (RFC 3339 years
    /// have four digits).
    pub const MIN: Timestamp = Timestamp(-62_135_596_800_000_000);

    /// The latest instant a timestamp may be: 9999-12-31T23:59:59.999999Z. A later one
    /// would be written with a five-digit year that RFC 3339 (and so Sonde's own
    /// import) does not read.
    pub const MAX: Timestamp = Timestamp(253_402_300_799_999_999);

    /// The instant `seconds` after the Unix epoch, if it is between [`Timestamp::MIN`]
    /// and [`Timestamp::MAX`].
    fn from_unix_seconds(seconds: f64) -> Option<Self> {
        let micros = (seconds * 1_000_000.0).round();
        // Compared as integers: near the ends a double cannot tell them apart.
        let whole = micros as i64;
        (micros.is_finite() && (Self::MIN.0..=Self::MAX.0).contains(&whole)).then_some(Self(whole))
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DateTime::parse_from_rfc3339(s.trim())
            .map(|t| Self::from_datetime(t.with_timezone(&Utc)))
            .map_err(|_| TimestampError {
                input: s.to_owned(),
            })
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            &self
                .to_datetime()
                .to_rfc3339_opts(SecondsFormat::Micros, true),
        )
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// What a number of Unix seconds outside [`Timestamp::MIN`]..[`Timestamp::MAX`] gets.
const OUT_OF_RANGE: &str = "timestamp out of range: expected a time from year 0001 to 9999";

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimestampVisitor;
        impl Visitor<'_> for TimestampVisitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp or a number of Unix seconds")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
                Timestamp::from_unix_seconds(v as f64).ok_or_else(|| E::custom(OUT_OF_RANGE))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
                Timestamp::from_unix_seconds(v as f64).ok_or_else(|| E::custom(OUT_OF_RANGE))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Timestamp, E> {
                Timestamp::from_unix_seconds(v).ok_or_else(|| E::custom(OUT_OF_RANGE))
            }
        }
        deserializer.deserialize_any(TimestampVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_with_six_fractional_digits_in_utc() {
        let t = Timestamp::from_micros(1_763_789_160_000_001);
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2025-11-22T05:26:00.000001Z\""
        );
    }

    #[test]
    fn accepts_unix_seconds_and_offsets() {
        let a: Timestamp = serde_json::from_str("1.5").unwrap();
        assert_eq!(a.as_micros(), 1_500_000);
        let b: Timestamp = serde_json::from_str("\"1970-01-01T01:00:01.5+01:00\"").unwrap();
        assert_eq!(b, a);
    }

    #[test]
    fn before_the_epoch_round_trips() {
        let t = Timestamp::from_micros(-1);
        assert_eq!(t.to_string().parse::<Timestamp>().unwrap(), t);
    }

    #[test]
    fn rejects_garbage_naming_the_input() {
        let err = "noon".parse::<Timestamp>().unwrap_err();
        assert!(err.to_string().contains("\"noon\""));
    }
}
