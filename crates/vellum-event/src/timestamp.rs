//! Timestamps: parsed from RFC 3339 (or the chapter's offset-less ISO 8601, taken as UTC),
//! stored in UTC with microsecond precision: `2026-11-26T16:55:08.976526Z`.

use std::fmt;
use std::str::FromStr;

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::EventError;

/// A point in time in UTC, microsecond precision.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        let now = OffsetDateTime::now_utc();
        // The clock is within years 1..=9999; fall back to the epoch rather than panic.
        Self::from_datetime(now).unwrap_or(Self(OffsetDateTime::UNIX_EPOCH))
    }

    /// Seconds since the Unix epoch, with microseconds.
    pub fn unix_micros(&self) -> i128 {
        self.0.unix_timestamp_nanos() / 1000
    }

    /// From microseconds since the Unix epoch.
    pub fn from_unix_micros(micros: i128) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp_nanos(micros.checked_mul(1000)?)
            .ok()
            .and_then(Self::from_datetime)
    }

    /// In UTC, truncated to microseconds; `None` outside years 0001 to 9999 (the range
    /// that prints as four digits and parses back).
    fn from_datetime(dt: OffsetDateTime) -> Option<Self> {
        let dt = dt.checked_to_offset(UtcOffset::UTC)?;
        if !(1..=9999).contains(&dt.year()) {
            return None;
        }
        let micros = dt.nanosecond() / 1000 * 1000;
        // Truncating nanoseconds to microseconds is always a valid nanosecond value.
        Some(Self(dt.replace_nanosecond(micros).unwrap_or(dt)))
    }

    /// Parses RFC 3339 (`2026-11-26T16:55:08.976526Z`, `…+01:00`) or an ISO 8601 date-time
    /// without offset (what Python's `datetime.utcnow().isoformat()` prints), taken as UTC.
    pub fn parse(s: &str) -> Result<Self, EventError> {
        let err = |reason: &str| EventError::InvalidTime {
            value: s.chars().take(64).collect(),
            reason: reason.to_string(),
        };
        let out_of_range = || err("outside the years 0001 to 9999 (in UTC)");
        if !s.as_bytes().first().is_some_and(u8::is_ascii_digit) {
            return Err(err("expected RFC 3339, like 2026-11-26T16:55:08.976526Z"));
        }
        if let Ok(dt) = OffsetDateTime::parse(s, &Rfc3339) {
            return Self::from_datetime(dt).ok_or_else(out_of_range);
        }
        let naive = format_description!(
            version = 2,
            "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
        );
        match PrimitiveDateTime::parse(s, &naive) {
            Ok(dt) => Self::from_datetime(dt.assume_utc()).ok_or_else(out_of_range),
            Err(_) => Err(err("expected RFC 3339, like 2026-11-26T16:55:08.976526Z")),
        }
    }
}

impl FromStr for Timestamp {
    type Err = EventError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            d.year(),
            u8::from(d.month()),
            d.day(),
            d.hour(),
            d.minute(),
            d.second(),
            d.nanosecond() / 1000
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_in_utc() {
        for (input, want) in [
            ("2026-11-26T16:55:08.976526Z", "2026-11-26T16:55:08.976526Z"),
            (
                "2026-11-26T17:55:08.976526+01:00",
                "2026-11-26T16:55:08.976526Z",
            ),
            ("2026-11-26T16:55:08Z", "2026-11-26T16:55:08.000000Z"),
            (
                "2026-11-26T16:55:08.976526123Z",
                "2026-11-26T16:55:08.976526Z",
            ),
            ("2026-11-26T16:55:08.976526", "2026-11-26T16:55:08.976526Z"),
            ("2026-11-26T16:55:08", "2026-11-26T16:55:08.000000Z"),
        ] {
            assert_eq!(
                Timestamp::parse(input).unwrap().to_string(),
                want,
                "{input}"
            );
        }
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-11-26 16:55:08",
            "2026-11-26",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad}");
        }
    }
}
