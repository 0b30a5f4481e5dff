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
        Self::from_datetime(OffsetDateTime::now_utc())
    }

    /// Seconds since the Unix epoch, with microseconds.
    pub fn unix_micros(&self) -> i128 {
        self.0.unix_timestamp_nanos() / 1000
    }

    /// From microseconds since the Unix epoch.
    pub fn from_unix_micros(micros: i128) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp_nanos(micros.checked_mul(1000)?)
            .ok()
            .map(Self::from_datetime)
    }

    fn from_datetime(dt: OffsetDateTime) -> Self {
        let dt = dt.to_offset(UtcOffset::UTC);
        let micros = dt.nanosecond() / 1000 * 1000;
        // Truncating nanoseconds to microseconds is always a valid nanosecond value.
        Self(dt.replace_nanosecond(micros).unwrap_or(dt))
    }

    /// Parses RFC 3339 (`2026-11-26T16:55:08.976526Z`, `…+01:00`) or an ISO 8601 date-time
    /// without offset (what Python's `datetime.utcnow().isoformat()` prints), taken as UTC.
    pub fn parse(s: &str) -> Result<Self, EventError> {
        let err = |reason: &str| EventError::InvalidTime {
            value: s.chars().take(64).collect(),
            reason: reason.to_string(),
        };
        if let Ok(dt) = OffsetDateTime::parse(s, &Rfc3339) {
            return Ok(Self::from_datetime(dt));
        }
        let naive = format_description!(
            version = 2,
            "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
        );
        match PrimitiveDateTime::parse(s, &naive) {
            Ok(dt) => Ok(Self::from_datetime(dt.assume_utc())),
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
