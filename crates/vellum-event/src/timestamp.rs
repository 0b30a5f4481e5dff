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
        Self::from_datetime(now).unwrap_or(Self::epoch())
    }

    /// 1970-01-01T00:00:00Z: the fallback of a clock out of range, and a placeholder where
    /// a time is needed but dropped.
    pub(crate) fn epoch() -> Self {
        Self(OffsetDateTime::UNIX_EPOCH)
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

impl Timestamp {
    /// The stored form, `2026-11-26T16:55:08.976526Z`: always 27 ASCII bytes (years are
    /// 0001 to 9999). Written digit by digit: this runs for every event appended.
    pub fn to_bytes(&self) -> [u8; 27] {
        let d = self.0;
        let mut b = *b"0000-00-00T00:00:00.000000Z";
        let mut put = |at: usize, width: usize, mut n: u32| {
            for i in (at..at + width).rev() {
                if let Some(slot) = b.get_mut(i) {
                    *slot = b'0' + (n % 10) as u8;
                }
                n /= 10;
            }
        };
        put(0, 4, d.year().unsigned_abs());
        put(5, 2, u8::from(d.month()).into());
        put(8, 2, d.day().into());
        put(11, 2, d.hour().into());
        put(14, 2, d.minute().into());
        put(17, 2, d.second().into());
        put(20, 6, d.nanosecond() / 1000);
        b
    }

    /// Appends [`Timestamp::to_bytes`] to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_bytes());
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.to_bytes();
        // Only ASCII digits and separators were written.
        f.write_str(std::str::from_utf8(&bytes).map_err(|_| fmt::Error)?)
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

    /// The digit-by-digit writer agrees with the `time` crate's own formatting, across the
    /// whole range of years and at the edges of every field.
    #[test]
    fn stored_form_matches_the_time_crate() {
        let reference = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
        );
        let first = Timestamp::parse("0001-01-01T00:00:00Z")
            .unwrap()
            .unix_micros();
        let last = Timestamp::parse("9999-12-31T23:59:59.999999Z")
            .unwrap()
            .unix_micros();
        let mut micros = first;
        let step = (last - first) / 10_007;
        while micros <= last {
            for m in [micros, micros + 999_999, micros + 86_399_999_999] {
                if let Some(t) = Timestamp::from_unix_micros(m.min(last)) {
                    let want = t.0.format(&reference).unwrap();
                    assert_eq!(t.to_string(), want);
                    let mut out = Vec::new();
                    t.write_to(&mut out);
                    assert_eq!(out, want.as_bytes());
                }
            }
            micros += step;
        }
    }
}
