//! Authentication and authorization of every API request, audited.
//!
//! A handler asks for the roles it allows (`caller.require(&state, &[..])`). The presented
//! Bearer token is looked up among the keys (hash compared in constant time); the outcome —
//! success, or failure with the reason, the caller's address and never the token — becomes
//! an `authentication`/`api_key.used` event. Repeated failures from one address within a
//! window slow the responses to it down and raise `security`/`brute_force.suspected`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, MatchedPath};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde_json::{Map, Value, json};
use vellum_event::{Category, Event, JsonObject, Outcome};
use vellum_store::{ApiKey, Role};

use crate::config::AuthConfig;
use crate::error::AppError;
use crate::state::{Lookup, SharedState};

/// The peer address of a connection, put on every request by the listener.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub SocketAddr);

/// Who is calling: address, user agent, the token presented and the route.
#[derive(Debug, Clone)]
pub struct Caller {
    pub ip: IpAddr,
    pub user_agent: Option<String>,
    token: Option<String>,
    malformed_auth: bool,
    pub method: String,
    pub route: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ClientAddr>()
            // An IPv4 client of a dual-stack listener is its IPv4 address (as events are
            // stored and filters given), not `::ffff:a.b.c.d`.
            .map(|a| a.0.ip().to_canonical())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let auth = parts
            .headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or(""));
        let token = auth
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        let route = parts
            .extensions
            .get::<MatchedPath>()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| parts.uri.path().to_string());
        Ok(Caller {
            ip,
            user_agent: parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(256).collect()),
            malformed_auth: auth.is_some() && token.is_none(),
            token,
            method: parts.method.to_string(),
            route,
        })
    }
}

impl Caller {
    /// The caller's key, if it is valid and its role is among `allowed`. Either way the
    /// authentication is recorded; failures are slowed down when they repeat.
    pub async fn require(&self, state: &SharedState, allowed: &[Role]) -> Result<ApiKey, AppError> {
        let lookup = match &self.token {
            None => Lookup::Unknown,
            Some(t) => state.keys.lookup(t),
        };
        let failure = match (&self.token, &lookup) {
            (None, _) if self.malformed_auth => {
                Some("malformed Authorization header (expected Bearer)")
            }
            (None, _) => Some("missing api key"),
            (Some(_), Lookup::Unknown) => Some("invalid api key"),
            (Some(_), Lookup::Revoked(_)) => Some("revoked api key"),
            (Some(_), Lookup::Valid(_)) => None,
        };
        if let Some(reason) = failure {
            let key = match &lookup {
                Lookup::Revoked(k) => Some(k),
                _ => None,
            };
            state.audit(self.auth_event(Outcome::Failure, key, Some(reason)));
            state.metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
            let (delay, raise) = state.brute.failure(self.ip);
            if raise {
                state
                    .metrics
                    .brute_force_flags
                    .fetch_add(1, Ordering::Relaxed);
                state.audit(self.brute_force_event(state));
            }
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            return Err(AppError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_api_key",
                reason,
            ));
        }
        let Lookup::Valid(key) = lookup else {
            return Err(AppError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_api_key",
                "invalid api key",
            ));
        };
        if !allowed.contains(&key.role) {
            let reason = format!(
                "role {} may not use {} {}",
                key.role, self.method, self.route
            );
            state.audit(self.auth_event(Outcome::Failure, Some(&key), Some(&reason)));
            return Err(AppError::new(
                StatusCode::FORBIDDEN,
                "permission_denied",
                reason,
            ));
        }
        state.audit(self.auth_event(Outcome::Success, Some(&key), None));
        Ok(key)
    }

    /// `actor`/`source`/`request` members describing this caller.
    /// Records `event` as this caller's (see [`Caller::describe`]) and waits until it is
    /// durable; the request fails if it cannot be (fail closed).
    pub async fn audit(
        &self,
        state: &SharedState,
        mut event: Event,
        key: &ApiKey,
    ) -> Result<(), AppError> {
        self.describe(&mut event, Some(key));
        state.audit_durably(event).await
    }

    pub fn describe(&self, event: &mut Event, key: Option<&ApiKey>) {
        if let Some(k) = key {
            event.actor = obj(json!({"user": k.name, "key_id": k.id}));
        }
        let mut source = Map::new();
        source.insert("ip".into(), Value::String(self.ip.to_string()));
        if let Some(ua) = &self.user_agent {
            source.insert("user_agent".into(), Value::String(ua.clone()));
        }
        event.source = Some(source.into());
        event.request = obj(json!({"method": self.method, "endpoint": self.route}));
    }

    fn auth_event(&self, outcome: Outcome, key: Option<&ApiKey>, reason: Option<&str>) -> Event {
        let mut ev = Event::new(Category::Authentication, "api_key.used", outcome);
        self.describe(&mut ev, key);
        ev.reason = reason.map(str::to_string);
        if let Some(k) = key {
            ev = ev.with_details(json!({"role": k.role.as_str()}));
        }
        ev
    }

    fn brute_force_event(&self, state: &SharedState) -> Event {
        let cfg = &state.config.auth;
        let mut ev = Event::new(
            Category::Security,
            "brute_force.suspected",
            Outcome::Failure,
        )
        .with_details(json!({
            "threshold": cfg.brute_force_threshold,
            "window_seconds": cfg.brute_force_window_seconds,
        }));
        self.describe(&mut ev, None);
        ev.reason = Some(format!(
            "more than {} authentication failures from {} within {} s",
            cfg.brute_force_threshold, self.ip, cfg.brute_force_window_seconds
        ));
        ev
    }
}

fn obj(v: Value) -> Option<JsonObject> {
    JsonObject::try_from(v).ok()
}

/// Failure counts per address, in fixed windows; bounded in size.
#[derive(Debug)]
pub struct BruteForce {
    threshold: u32,
    window: Duration,
    max_delay: Duration,
    seen: Mutex<HashMap<IpAddr, Window>>,
}

#[derive(Debug)]
struct Window {
    start: Instant,
    failures: u32,
    flagged: bool,
}

const MAX_TRACKED: usize = 100_000;

impl BruteForce {
    pub fn new(cfg: &AuthConfig) -> Self {
        Self {
            threshold: cfg.brute_force_threshold,
            window: Duration::from_secs(cfg.brute_force_window_seconds.max(1)),
            max_delay: Duration::from_millis(cfg.max_delay_ms),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a failure from `ip`: how long to delay the response, and whether this is
    /// the failure that crosses the threshold (raise the security event once per window).
    pub fn failure(&self, ip: IpAddr) -> (Duration, bool) {
        let Ok(mut seen) = self.seen.lock() else {
            return (Duration::ZERO, false);
        };
        let now = Instant::now();
        if seen.len() >= MAX_TRACKED && !seen.contains_key(&ip) {
            seen.retain(|_, w| now.duration_since(w.start) < self.window);
            if seen.len() >= MAX_TRACKED {
                seen.clear();
            }
        }
        let w = seen.entry(ip).or_insert(Window {
            start: now,
            failures: 0,
            flagged: false,
        });
        if now.duration_since(w.start) >= self.window {
            *w = Window {
                start: now,
                failures: 0,
                flagged: false,
            };
        }
        w.failures += 1;
        if w.failures <= self.threshold {
            return (Duration::ZERO, false);
        }
        let raise = !w.flagged;
        w.flagged = true;
        let over = (w.failures - self.threshold).min(16);
        let delay = Duration::from_millis(50u64 << over).min(self.max_delay);
        (delay, raise)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_past_the_threshold_slow_down_and_flag_once() {
        let b = BruteForce::new(&AuthConfig {
            brute_force_threshold: 3,
            brute_force_window_seconds: 60,
            max_delay_ms: 400,
        });
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(b.failure(ip), (Duration::ZERO, false));
        }
        assert_eq!(b.failure(ip), (Duration::from_millis(100), true));
        assert_eq!(b.failure(ip), (Duration::from_millis(200), false));
        assert_eq!(b.failure(ip), (Duration::from_millis(400), false));
        assert_eq!(b.failure(ip), (Duration::from_millis(400), false));
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(b.failure(other), (Duration::ZERO, false));
    }
}
