//! Query filters over stored events.

use std::borrow::Cow;

use crate::{Category, EventError, Outcome, StoredEvent, Timestamp};

/// Which events a query wants; every set member must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub category: Option<Category>,
    pub action: Option<String>,
    pub outcome: Option<Outcome>,
    pub user: Option<String>,
    pub ip: Option<String>,
    /// Inclusive lower bound on the event's `time`.
    pub since: Option<Timestamp>,
    /// Exclusive upper bound on the event's `time`.
    pub until: Option<Timestamp>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }

    pub fn matches(&self, stored: &StoredEvent) -> bool {
        let e = &stored.event;
        self.category.is_none_or(|c| c == e.category)
            && self.action.as_deref().is_none_or(|a| a == e.action)
            && self.outcome.is_none_or(|o| o == e.outcome)
            && self
                .user
                .as_deref()
                .is_none_or(|u| Some(u) == e.user().as_deref())
            && self
                .ip
                .as_deref()
                .is_none_or(|ip| Some(ip) == e.ip().as_deref())
            && self.since.is_none_or(|t| e.time >= t)
            && self.until.is_none_or(|t| e.time < t)
    }
}

/// A filter's members as text, as the command line and the query API take them.
#[derive(Clone, Copy, Debug, Default)]
pub struct FilterText<'a> {
    pub category: Option<&'a str>,
    pub action: Option<&'a str>,
    pub outcome: Option<&'a str>,
    pub user: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub since: Option<&'a str>,
    pub until: Option<&'a str>,
}

impl FilterText<'_> {
    /// The filter these members name, or why one of them can match no event: an unknown
    /// category or outcome, a time that is not RFC 3339, an address that is not one (events
    /// with such a `source.ip` are refused). An address matches however it is written, as
    /// events store it in its canonical text; action and user match as written.
    pub fn parse(&self) -> Result<Filter, EventError> {
        let filter = Filter {
            category: self.category.map(str::parse).transpose()?,
            action: self.action.map(str::to_owned),
            outcome: self.outcome.map(str::parse).transpose()?,
            user: self.user.map(str::to_owned),
            ip: self
                .ip
                .map(|ip| crate::event::canonical_ip(ip).map(Cow::into_owned))
                .transpose()?,
            since: self.since.map(Timestamp::parse).transpose()?,
            until: self.until.map(Timestamp::parse).transpose()?,
        };
        if let (Some(since), Some(until)) = (filter.since, filter.until)
            && since >= until
        {
            return Err(EventError::Invalid {
                field: "until",
                reason: format!(
                    "the range is empty: until {until} is not after since {since} (since is inclusive, until exclusive)"
                ),
            });
        }
        if self.action == Some("") {
            return Err(EventError::Invalid {
                field: "action",
                reason: "no event has an empty action".into(),
            });
        }
        Ok(filter)
    }
}
