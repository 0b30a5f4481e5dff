//! Filters given as text (command-line flags, query parameters): each member parsed, or a
//! clear error for a value no stored event can have.

use vellum_event::{Category, EventError, FilterText, Outcome, Timestamp};

#[test]
fn filter_text_parses_or_names_what_is_wrong() {
    type Check = fn(&Result<vellum_event::Filter, EventError>) -> bool;
    let t = FilterText::default;
    let cases: &[(&str, FilterText, Check)] = &[
        ("nothing", t(), |r| r.as_ref().is_ok_and(|f| f.is_empty())),
        (
            "category",
            FilterText {
                category: Some("security"),
                ..t()
            },
            |r| {
                r.as_ref()
                    .is_ok_and(|f| f.category == Some(Category::Security))
            },
        ),
        (
            "outcome",
            FilterText {
                outcome: Some("failure"),
                ..t()
            },
            |r| {
                r.as_ref()
                    .is_ok_and(|f| f.outcome == Some(Outcome::Failure))
            },
        ),
        (
            "IPv4 kept as written",
            FilterText {
                ip: Some("203.0.113.7"),
                ..t()
            },
            |r| {
                r.as_ref()
                    .is_ok_and(|f| f.ip.as_deref() == Some("203.0.113.7"))
            },
        ),
        (
            "IPv6, in its canonical text however written",
            FilterText {
                ip: Some("2001:DB8:0:0::1"),
                ..t()
            },
            |r| {
                r.as_ref()
                    .is_ok_and(|f| f.ip.as_deref() == Some("2001:db8::1"))
            },
        ),
        (
            "action and user as written",
            FilterText {
                action: Some("api_key.used"),
                user: Some("alice"),
                ..t()
            },
            |r| {
                r.as_ref().is_ok_and(|f| {
                    f.action.as_deref() == Some("api_key.used")
                        && f.user.as_deref() == Some("alice")
                })
            },
        ),
        (
            "time range",
            FilterText {
                since: Some("2026-11-26T00:00:00Z"),
                until: Some("2026-11-27T00:00:00+01:00"),
                ..t()
            },
            |r| {
                r.as_ref().is_ok_and(|f| {
                    f.since == Timestamp::parse("2026-11-26T00:00:00Z").ok()
                        && f.until == Timestamp::parse("2026-11-26T23:00:00Z").ok()
                })
            },
        ),
        (
            "unknown category",
            FilterText {
                category: Some("gossip"),
                ..t()
            },
            |r| matches!(r, Err(EventError::UnknownCategory(c)) if c == "gossip"),
        ),
        (
            "unknown outcome",
            FilterText {
                outcome: Some("maybe"),
                ..t()
            },
            |r| matches!(r, Err(EventError::UnknownOutcome(o)) if o == "maybe"),
        ),
        (
            "not an address",
            FilterText {
                ip: Some("10.0.0"),
                ..t()
            },
            |r| matches!(r, Err(EventError::InvalidIp(ip)) if ip == "10.0.0"),
        ),
        (
            "empty address",
            FilterText {
                ip: Some(""),
                ..t()
            },
            |r| matches!(r, Err(EventError::InvalidIp(_))),
        ),
        (
            "not a time",
            FilterText {
                since: Some("yesterday"),
                ..t()
            },
            |r| matches!(r, Err(EventError::InvalidTime { value, .. }) if value == "yesterday"),
        ),
        (
            "an empty time range",
            FilterText {
                since: Some("2026-11-27T00:00:00Z"),
                until: Some("2026-11-27T01:00:00+01:00"),
                ..t()
            },
            |r| matches!(r, Err(EventError::Invalid { field: "until", .. })),
        ),
        (
            "an empty action",
            FilterText {
                action: Some(""),
                ..t()
            },
            |r| {
                matches!(
                    r,
                    Err(EventError::Invalid {
                        field: "action",
                        ..
                    })
                )
            },
        ),
    ];
    for (name, text, check) in cases {
        let parsed = text.parse();
        assert!(check(&parsed), "{name}: got {parsed:?}");
    }
}
