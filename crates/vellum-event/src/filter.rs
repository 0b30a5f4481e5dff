//! Query filters over stored events.

use crate::{Category, Outcome, StoredEvent, Timestamp};

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
