//! The audit API without sockets: every route is called through `router(state)` with
//! `tower::ServiceExt::oneshot`, the client address simulated with the `ClientAddr`
//! extension the listener would insert, and the server's own audit trail read back from the
//! data directory with `LogReader`.
//!
//! - `every_route_and_role`: a table of (route, credential) → status: missing, wrong,
//!   revoked or malformed keys get 401 and an authentication-failure event carrying the
//!   caller's address; a role the route does not allow gets 403 (also recorded); the right
//!   role gets 2xx, and reads of the log are `data_access`/`audit_log.read` events.
//! - ingest: one object, a JSON array, NDJSON; a bad batch is refused whole and names the
//!   line; re-sent ids come back as duplicates, another event under a stored id gets 409;
//!   an oversized body gets 413.
//! - reading: a receipt from `GET /v1/events/{index}` verifies offline and embeds the stored
//!   bytes; query paging with the cursor returns every match exactly once.
//! - `/metrics`, and brute-force detection after repeated failures from one address.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tempfile::TempDir;
use tower::ServiceExt;
use vellum_event::{Category, Outcome, StoredEvent};
use vellum_server::auth::ClientAddr;
use vellum_server::{Config, SharedState};
use vellum_store::{LogReader, Receipt, Role};

// ---------------------------------------------------------------------------------------
// Harness.

/// A server state on a fresh data directory, with one key of every role.
struct Harness {
    dir: TempDir,
    state: SharedState,
    admin: String,
    ingest: String,
    auditor: String,
    client: String,
    /// A key (admin role) that was revoked.
    revoked: String,
    revoked_id: String,
    ids: BTreeMap<&'static str, String>,
}

impl Harness {
    async fn new(config: Config) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        // `prepare` blocks on the store (it is called before the runtime starts).
        let path = dir.path().to_path_buf();
        let (state, token) =
            tokio::task::spawn_blocking(move || vellum_server::prepare(&path, config))
                .await
                .unwrap()
                .unwrap();
        let admin = token.expect("a fresh data directory gets an admin key");
        let mut ids = BTreeMap::new();
        let admin_id = match state.keys.lookup(&admin) {
            vellum_server::state::Lookup::Valid(k) => k.id,
            other => panic!("the admin token does not look up: {other:?}"),
        };
        ids.insert("admin", admin_id);
        let mut make = |name: &'static str, role: Role| {
            let k = state.keys.create(name, role).unwrap();
            ids.insert(name, k.key.id.clone());
            k.token
        };
        let ingest = make("ingest", Role::Ingest);
        let auditor = make("auditor", Role::Auditor);
        let client = make("client", Role::Client);
        let revoked = make("revoked", Role::Admin);
        let revoked_id = ids["revoked"].clone();
        state.keys.revoke(&revoked_id).unwrap();
        // Proof routes need a checkpoint to prove against.
        state.store.checkpoint_async().await.unwrap();
        Harness {
            dir,
            state,
            admin,
            ingest,
            auditor,
            client,
            revoked,
            revoked_id,
            ids,
        }
    }

    fn token(&self, cred: Cred) -> Option<String> {
        match cred {
            Cred::None | Cred::Malformed => None,
            Cred::Wrong => Some(format!("vk-{}-{}", "0badc0de", "ab".repeat(32))),
            Cred::Revoked => Some(self.revoked.clone()),
            Cred::Admin => Some(self.admin.clone()),
            Cred::Ingest => Some(self.ingest.clone()),
            Cred::Auditor => Some(self.auditor.clone()),
            Cred::Client => Some(self.client.clone()),
        }
    }

    fn key_id(&self, cred: Cred) -> Option<&str> {
        let name = match cred {
            Cred::Admin => "admin",
            Cred::Ingest => "ingest",
            Cred::Auditor => "auditor",
            Cred::Client => "client",
            Cred::Revoked => "revoked",
            _ => return None,
        };
        Some(self.ids[name].as_str())
    }

    /// One request through the router, as if from `ip`.
    async fn call(&self, req: Req<'_>) -> Resp {
        let mut b = Request::builder().method(req.method).uri(req.path).header(
            header::USER_AGENT,
            req.user_agent.unwrap_or("routes-test/1"),
        );
        match (req.cred, self.token(req.cred)) {
            (Cred::Malformed, _) => b = b.header(header::AUTHORIZATION, "Basic dXNlcjpwYXNz"),
            (_, Some(t)) => b = b.header(header::AUTHORIZATION, format!("Bearer {t}")),
            _ => {}
        }
        if let Some(ct) = req.content_type {
            b = b.header(header::CONTENT_TYPE, ct);
        }
        let mut request = b.body(Body::from(req.body)).unwrap();
        request
            .extensions_mut()
            .insert(ClientAddr(SocketAddr::new(req.ip, 40_000)));
        let resp = vellum_server::router(self.state.clone())
            .oneshot(request)
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }

    /// Waits until every audit event queued so far is durable: the writer handles its
    /// queue in order, so a checkpoint requested now comes after them.
    async fn flush(&self) {
        self.state.store.checkpoint_async().await.unwrap();
    }

    /// Every stored event, with its bytes.
    async fn log(&self) -> Vec<(StoredEvent, Vec<u8>)> {
        self.flush().await;
        let reader = LogReader::open(self.dir.path()).unwrap();
        let size = reader.size().unwrap();
        let mut out = Vec::new();
        reader
            .for_each(0, size, |_, bytes| {
                out.push((StoredEvent::parse(bytes).unwrap(), bytes.to_vec()));
                Ok(())
            })
            .unwrap();
        assert_eq!(out.len() as u64, size);
        out
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cred {
    /// No Authorization header.
    None,
    /// A well-formed token no key has.
    Wrong,
    /// The token of a revoked (admin) key.
    Revoked,
    /// `Authorization: Basic …`.
    Malformed,
    Admin,
    Ingest,
    Auditor,
    Client,
}

struct Req<'a> {
    method: &'a str,
    path: &'a str,
    cred: Cred,
    body: Vec<u8>,
    content_type: Option<&'a str>,
    ip: IpAddr,
    user_agent: Option<&'a str>,
}

impl<'a> Req<'a> {
    fn new(method: &'a str, path: &'a str, cred: Cred) -> Self {
        Req {
            method,
            path,
            cred,
            body: Vec::new(),
            content_type: None,
            ip: ip("198.51.100.7"),
            user_agent: None,
        }
    }
    fn body(mut self, content_type: &'a str, body: impl Into<Vec<u8>>) -> Self {
        self.content_type = Some(content_type);
        self.body = body.into();
        self
    }
    fn from(mut self, ip: IpAddr) -> Self {
        self.ip = ip;
        self
    }
}

#[derive(Debug)]
struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    #[track_caller]
    fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text()
        );
        self
    }
    /// The contract's error shape, `{"error":{"code","message"}}`; returns the code.
    #[track_caller]
    fn error_code(&self) -> String {
        let v = self.json();
        let code = v["error"]["code"].as_str().unwrap_or_else(|| {
            panic!(
                "not the contract's error shape: {}",
                String::from_utf8_lossy(&self.body)
            )
        });
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "error without a message: {v}"
        );
        code.to_string()
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A native-shape event with this id.
fn event(id: &str, user: &str) -> Value {
    json!({
        "id": id,
        "time": "2026-11-26T16:55:08.976526Z",
        "category": "data_access",
        "action": "document.retrieved",
        "outcome": "success",
        "actor": {"user": user, "key_id": "k_3f9a2c"},
        "source": {"ip": "203.0.113.7", "user_agent": "rag-app/2.1"},
        "target": {"type": "document", "name": format!("doc-{id}")},
        "details": {"collection": "contracts"},
    })
}

fn ndjson(events: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        out.extend_from_slice(e.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

fn str_at(m: &Option<vellum_event::JsonObject>, key: &str) -> Option<String> {
    m.as_ref().and_then(|m| m.get_str(key))
}

// ---------------------------------------------------------------------------------------
// Authentication and authorization, route by route and role by role.

/// Expected statuses, in the order of `CREDS`.
const CREDS: [Cred; 8] = [
    Cred::None,
    Cred::Wrong,
    Cred::Revoked,
    Cred::Malformed,
    Cred::Ingest,
    Cred::Auditor,
    Cred::Client,
    Cred::Admin,
];

struct Row {
    method: &'static str,
    path: &'static str,
    /// The route as `MatchedPath` names it (what audit events record).
    route: &'static str,
    body: Option<(&'static str, String)>,
    /// none, wrong, revoked, malformed, ingest, auditor, client, admin.
    expect: [u16; 8],
    /// A successful call is a read of the audit log (`audit_log.read`).
    read: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_and_role() {
    let h = Harness::new(Config::default()).await;
    // A key only the admin's DELETE may revoke.
    let victim = h.state.keys.create("victim", Role::Ingest).unwrap();
    let victim_path: &'static str =
        Box::leak(format!("/v1/keys/{}", victim.key.id).into_boxed_str());
    let one_event = event("route-table-1", "alice").to_string();
    let new_key = json!({"name": "made-in-test", "role": "auditor"}).to_string();

    #[rustfmt::skip]
    let table = vec![
        // expect: none, wrong, revoked, malformed, ingest, auditor, client, admin
        Row { method: "POST", path: "/v1/events", route: "/v1/events", body: Some(("application/json", one_event.clone())), expect: [401, 401, 401, 401, 200, 403, 403, 200], read: false },
        Row { method: "GET", path: "/v1/events?limit=5", route: "/v1/events", body: None, expect: [401, 401, 401, 401, 403, 200, 403, 200], read: true },
        Row { method: "GET", path: "/v1/events/0", route: "/v1/events/{index}", body: None, expect: [401, 401, 401, 401, 403, 200, 403, 200], read: true },
        Row { method: "GET", path: "/v1/proof/inclusion?index=0", route: "/v1/proof/inclusion", body: None, expect: [401, 401, 401, 401, 403, 200, 403, 200], read: true },
        Row { method: "GET", path: "/v1/proof/consistency?from=1", route: "/v1/proof/consistency", body: None, expect: [401, 401, 401, 401, 403, 200, 403, 200], read: true },
        Row { method: "POST", path: "/v1/keys", route: "/v1/keys", body: Some(("application/json", new_key.clone())), expect: [401, 401, 401, 401, 403, 403, 403, 201], read: false },
        Row { method: "GET", path: "/v1/keys", route: "/v1/keys", body: None, expect: [401, 401, 401, 401, 403, 403, 403, 200], read: false },
        Row { method: "DELETE", path: victim_path, route: "/v1/keys/{id}", body: None, expect: [401, 401, 401, 401, 403, 403, 403, 200], read: false },
        // Public: any credential, or none, gets through and nothing is authenticated.
        Row { method: "GET", path: "/v1/checkpoint", route: "/v1/checkpoint", body: None, expect: [200; 8], read: false },
        Row { method: "GET", path: "/v1/key", route: "/v1/key", body: None, expect: [200; 8], read: false },
        Row { method: "GET", path: "/healthz", route: "/healthz", body: None, expect: [200; 8], read: false },
        Row { method: "GET", path: "/readyz", route: "/readyz", body: None, expect: [200; 8], read: false },
        Row { method: "GET", path: "/metrics", route: "/metrics", body: None, expect: [200; 8], read: false },
    ];

    // Each call comes from its own address, so its audit events can be told apart.
    struct Case {
        row: usize,
        cred: Cred,
        ip: IpAddr,
        status: u16,
    }
    let mut cases = Vec::new();
    let mut failures = Vec::new();
    for (r, row) in table.iter().enumerate() {
        for (c, &cred) in CREDS.iter().enumerate() {
            if row.method == "DELETE" && cred == Cred::Admin {
                assert!(
                    matches!(
                        h.state.keys.lookup(&victim.token),
                        vellum_server::state::Lookup::Valid(_)
                    ),
                    "a refused DELETE revoked the key anyway"
                );
            }
            let addr = IpAddr::from([198, 51, 100, (r * CREDS.len() + c + 1) as u8]);
            let mut req = Req::new(row.method, row.path, cred).from(addr);
            if let Some((ct, body)) = &row.body {
                req = req.body(ct, body.clone());
            }
            let resp = h.call(req).await;
            let want = row.expect[c];
            if resp.status.as_u16() != want {
                failures.push(format!(
                    "{} {} with {cred:?}: got {}, want {want}: {}",
                    row.method,
                    row.path,
                    resp.status,
                    resp.text()
                ));
            }
            if want == 401 || want == 403 {
                let code = resp.error_code();
                let expected = if want == 401 {
                    "invalid_api_key"
                } else {
                    "permission_denied"
                };
                assert_eq!(code, expected, "{} {} with {cred:?}", row.method, row.path);
            }
            cases.push(Case {
                row: r,
                cred,
                ip: addr,
                status: want,
            });
        }
    }
    assert!(
        failures.is_empty(),
        "wrong statuses:\n{}",
        failures.join("\n")
    );

    // Revoking again answers as before (the first time stays) and records nothing more:
    // the count of the victim's `key.revoked` events below is still 1.
    let again = h
        .call(Req::new("DELETE", victim_path, Cred::Admin).from(IpAddr::from([203, 0, 113, 250])))
        .await;
    assert_eq!(again.status.as_u16(), 200, "{}", again.text());
    let revoked_at = h
        .state
        .keys
        .list()
        .iter()
        .find(|k| k.id == victim.key.id)
        .and_then(|k| k.revoked.clone());
    assert_eq!(again.json()["revoked"].as_str(), revoked_at.as_deref());

    // The audit trail, grouped by source address.
    let log = h.log().await;
    let mut by_ip: BTreeMap<String, Vec<&StoredEvent>> = BTreeMap::new();
    for (e, _) in &log {
        if let Some(ip) = e.event.ip() {
            by_ip.entry(ip.to_string()).or_default().push(e);
        }
    }
    let mut problems = Vec::new();
    for case in &cases {
        let row = &table[case.row];
        let what = format!("{} {} with {:?}", row.method, row.path, case.cred);
        let evs = by_ip.get(&case.ip.to_string()).cloned().unwrap_or_default();
        let auth: Vec<_> = evs
            .iter()
            .filter(|e| e.event.category == Category::Authentication)
            .collect();
        let reads = evs
            .iter()
            .filter(|e| {
                e.event.category == Category::DataAccess && e.event.action == "audit_log.read"
            })
            .count();
        let public = row.expect == [200; 8];
        if public {
            if !evs.is_empty() {
                problems.push(format!(
                    "{what}: a public route recorded {} events",
                    evs.len()
                ));
            }
            continue;
        }
        if auth.len() != 1 {
            problems.push(format!(
                "{what}: {} authentication events, want 1",
                auth.len()
            ));
            continue;
        }
        let a = &auth[0].event;
        let endpoint = str_at(&a.request, "endpoint");
        if a.action != "api_key.used"
            || endpoint.as_deref() != Some(row.route)
            || str_at(&a.request, "method").as_deref() != Some(row.method)
        {
            problems.push(format!(
                "{what}: authentication event {} names {endpoint:?}",
                a.action
            ));
        }
        if str_at(&a.source, "user_agent").as_deref() != Some("routes-test/1") {
            problems.push(format!("{what}: the user agent is not recorded"));
        }
        match case.status {
            401 => {
                let reason = a.reason.as_deref().unwrap_or("");
                let want = match case.cred {
                    Cred::None => "missing api key",
                    Cred::Wrong => "invalid api key",
                    Cred::Revoked => "revoked api key",
                    Cred::Malformed => "malformed Authorization header",
                    _ => unreachable!(),
                };
                if a.outcome != Outcome::Failure || !reason.contains(want) {
                    problems.push(format!(
                        "{what}: failure event {:?} {reason:?}, want {want:?}",
                        a.outcome
                    ));
                }
                if case.cred == Cred::Revoked
                    && str_at(&a.actor, "key_id").as_deref() != Some(h.revoked_id.as_str())
                {
                    problems.push(format!("{what}: the revoked key's id is not recorded"));
                }
                if reads > 0 {
                    problems.push(format!(
                        "{what}: an unauthenticated call was recorded as a read"
                    ));
                }
            }
            403 => {
                let reason = a.reason.as_deref().unwrap_or("");
                if a.outcome != Outcome::Failure
                    || !reason.contains("may not use")
                    || str_at(&a.actor, "key_id").as_deref() != h.key_id(case.cred)
                {
                    problems.push(format!(
                        "{what}: 403 recorded as {:?} {reason:?} by {:?}",
                        a.outcome, a.actor
                    ));
                }
                if reads > 0 {
                    problems.push(format!("{what}: a refused call was recorded as a read"));
                }
            }
            _ => {
                if a.outcome != Outcome::Success
                    || str_at(&a.actor, "key_id").as_deref() != h.key_id(case.cred)
                {
                    problems.push(format!(
                        "{what}: success recorded as {:?} by {:?}",
                        a.outcome, a.actor
                    ));
                }
                let want = usize::from(row.read);
                if reads != want {
                    problems.push(format!(
                        "{what}: {reads} audit_log.read events, want {want}"
                    ));
                }
            }
        }
    }
    // Key management is audited as admin events naming the admin.
    let admin_events: Vec<_> = log
        .iter()
        .filter(|(e, _)| e.event.category == Category::Admin)
        .map(|(e, _)| e)
        .collect();
    let revoked_victim = admin_events
        .iter()
        .filter(|e| {
            e.event.action == "key.revoked"
                && str_at(&e.event.target, "name").as_deref() == Some(victim.key.id.as_str())
        })
        .count();
    if revoked_victim != 1 {
        problems.push(format!(
            "{revoked_victim} key.revoked events for the victim, want 1"
        ));
    }
    let created = admin_events
        .iter()
        .filter(|e| {
            e.event.action == "key.created"
                && str_at(&e.event.actor, "key_id").as_deref() == Some(h.ids["admin"].as_str())
                && e.event
                    .details
                    .as_ref()
                    .is_some_and(|d| d.get().contains("made-in-test"))
        })
        .count();
    if created != 1 {
        problems.push(format!("{created} key.created events by the admin, want 1"));
    }
    // Listing the keys (the admin's one successful GET /v1/keys) is an admin event too.
    let listed = admin_events
        .iter()
        .filter(|e| {
            e.event.action == "key.listed"
                && str_at(&e.event.actor, "key_id").as_deref() == Some(h.ids["admin"].as_str())
                && str_at(&e.event.request, "endpoint").as_deref() == Some("/v1/keys")
        })
        .count();
    if listed != 1 {
        problems.push(format!("{listed} key.listed events by the admin, want 1"));
    }
    // Secrets never land on disk.
    for t in [
        &h.admin,
        &h.ingest,
        &h.auditor,
        &h.client,
        &h.revoked,
        &victim.token,
    ] {
        if log
            .iter()
            .any(|(_, b)| String::from_utf8_lossy(b).contains(t.as_str()))
        {
            problems.push("a token was written to the log".to_string());
        }
    }
    assert!(
        problems.is_empty(),
        "audit trail problems:\n{}",
        problems.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_authentication_carries_the_callers_address() {
    let h = Harness::new(Config::default()).await;
    // The second as a dual-stack listener sees an IPv4 client: the same address.
    for from in ["198.51.100.7", "::ffff:198.51.100.7"] {
        let resp = h
            .call(Req::new("GET", "/v1/events", Cred::Wrong).from(ip(from)))
            .await;
        resp.expect(401);
        assert_eq!(resp.error_code(), "invalid_api_key");
    }
    let log = h.log().await;
    let failures: Vec<_> = log
        .iter()
        .filter(|(e, _)| {
            e.event.category == Category::Authentication && e.event.outcome == Outcome::Failure
        })
        .collect();
    assert_eq!(failures.len(), 2, "{failures:?}");
    for (e, bytes) in failures {
        assert_eq!(e.event.ip().as_deref(), Some("198.51.100.7"));
        assert_eq!(e.event.action, "api_key.used");
        // Stored so, not only read back so.
        let text = String::from_utf8_lossy(bytes);
        assert!(text.contains(r#""ip":"198.51.100.7""#), "{text}");
    }
}

// ---------------------------------------------------------------------------------------
// Ingest.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_accepts_ndjson_arrays_and_single_objects() {
    let h = Harness::new(Config::default()).await;
    let before = h.state.store.tree_size();

    let nd: Vec<Value> = (0..3).map(|i| event(&format!("nd-{i}"), "alice")).collect();
    let r = h
        .call(
            Req::new("POST", "/v1/events", Cred::Ingest).body("application/x-ndjson", ndjson(&nd)),
        )
        .await;
    r.expect(200);
    let v = r.json();
    assert_eq!(v["accepted"], 3, "{v}");
    assert_eq!(v["duplicates"], 0, "{v}");
    let first = v["first_index"].as_u64().unwrap();
    assert_eq!(v["last_index"].as_u64().unwrap(), first + 2);
    assert!(v["tree_size"].as_u64().unwrap() > first + 2);
    assert!(first >= before);

    let arr: Vec<Value> = (0..4).map(|i| event(&format!("arr-{i}"), "bob")).collect();
    let r = h
        .call(
            Req::new("POST", "/v1/events", Cred::Admin)
                .body("application/json", Value::Array(arr).to_string()),
        )
        .await;
    r.expect(200);
    assert_eq!(r.json()["accepted"], 4);

    let r = h
        .call(
            Req::new("POST", "/v1/events", Cred::Ingest)
                .body("application/json", event("single", "carol").to_string()),
        )
        .await;
    r.expect(200);
    let v = r.json();
    assert_eq!(v["accepted"], 1);
    assert_eq!(v["first_index"], v["last_index"]);

    // The chapter's shape, as the old Python logger posts it.
    let chapter = json!({"timestamp": "2026-11-26T16:55:08Z", "event_type": "authentication",
        "user": "dave", "details": {"action": "login", "success": false}, "source_ip": "192.0.2.9"});
    let r = h
        .call(
            Req::new("POST", "/v1/events", Cred::Ingest)
                .body("application/json", chapter.to_string()),
        )
        .await;
    r.expect(200);

    let log = h.log().await;
    let ids: Vec<&str> = log.iter().map(|(e, _)| e.event.id.as_str()).collect();
    for want in ["nd-0", "nd-1", "nd-2", "arr-0", "arr-3", "single"] {
        assert_eq!(ids.iter().filter(|i| **i == want).count(), 1, "{want}");
    }
    // Stored in the order given, at the indexes reported.
    let nd0 = log
        .iter()
        .find(|(e, _)| e.event.id.as_str() == "nd-0")
        .unwrap();
    assert_eq!(nd0.0.index, first);
    let dave = log
        .iter()
        .find(|(e, _)| e.event.user().as_deref() == Some("dave"))
        .unwrap();
    assert_eq!(dave.0.event.action, "login");
    assert_eq!(dave.0.event.outcome, Outcome::Failure);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_batch_is_refused_whole_and_names_the_line() {
    let h = Harness::new(Config::default()).await;
    let mut lines = vec![event("bad-batch-0", "a"), event("bad-batch-1", "a")];
    let mut broken = event("bad-batch-2", "a");
    broken.as_object_mut().unwrap().remove("category");
    lines.push(broken);
    lines.push(event("bad-batch-3", "a"));
    let r = h
        .call(
            Req::new("POST", "/v1/events", Cred::Ingest)
                .body("application/x-ndjson", ndjson(&lines)),
        )
        .await;
    r.expect(400);
    assert_eq!(r.error_code(), "invalid_event");
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("line 3") && msg.contains("category"), "{msg}");

    // A JSON array names the element.
    let arr = json!([event("bad-arr-0", "a"), {"category": "admin", "action": "x", "bogus": 1}]);
    let r = h
        .call(
            Req::new("POST", "/v1/events", Cred::Ingest).body("application/json", arr.to_string()),
        )
        .await;
    r.expect(400);
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("element 2") && msg.contains("bogus"), "{msg}");

    // Not JSON at all, and an empty body.
    for (ct, body) in [
        ("application/json", "{not json"),
        ("application/x-ndjson", "\n\n"),
    ] {
        let r = h
            .call(Req::new("POST", "/v1/events", Cred::Ingest).body(ct, body))
            .await;
        r.expect(400);
        r.error_code();
    }

    let log = h.log().await;
    let stored: Vec<&str> = log
        .iter()
        .map(|(e, _)| e.event.id.as_str())
        .filter(|id| id.starts_with("bad-"))
        .collect();
    assert!(
        stored.is_empty(),
        "parts of refused batches were stored: {stored:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resent_ids_come_back_as_duplicates_and_other_events_under_them_conflict() {
    let h = Harness::new(Config::default()).await;
    let batch: Vec<Value> = (0..5)
        .map(|i| event(&format!("dup-{i}"), "alice"))
        .collect();
    let body = ndjson(&batch);
    let r = h
        .call(
            Req::new("POST", "/v1/events", Cred::Ingest).body("application/x-ndjson", body.clone()),
        )
        .await;
    r.expect(200);
    let first = r.json();
    assert_eq!(first["accepted"], 5);

    let r = h
        .call(Req::new("POST", "/v1/events", Cred::Ingest).body("application/x-ndjson", body))
        .await;
    r.expect(200);
    let again = r.json();
    assert_eq!(again["accepted"], 0, "{again}");
    assert_eq!(again["duplicates"], 5, "{again}");
    assert!(again["first_index"].is_null(), "{again}");

    // Half old, half new.
    let mixed: Vec<Value> = (3..8)
        .map(|i| event(&format!("dup-{i}"), "alice"))
        .collect();
    let r = h
        .call(
            Req::new("POST", "/v1/events", Cred::Ingest)
                .body("application/x-ndjson", ndjson(&mixed)),
        )
        .await;
    r.expect(200);
    let v = r.json();
    assert_eq!(
        (v["accepted"].as_u64(), v["duplicates"].as_u64()),
        (Some(3), Some(2)),
        "{v}"
    );

    // Another event under a stored id: 409, and nothing of the request is stored.
    let clash = vec![event("dup-9", "alice"), event("dup-1", "mallory")];
    let r = h
        .call(
            Req::new("POST", "/v1/events", Cred::Ingest)
                .body("application/x-ndjson", ndjson(&clash)),
        )
        .await;
    r.expect(409);
    let v = r.json();
    assert_eq!(v["error"]["code"], "id_conflict", "{v}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("dup-1") && message.contains("other content"),
        "{v}"
    );

    let log = h.log().await;
    assert!(
        !log.iter().any(|(e, _)| e.event.id.as_str() == "dup-9"),
        "part of a refused request was stored"
    );
    for i in 0..8 {
        let id = format!("dup-{i}");
        let n = log
            .iter()
            .filter(|(e, _)| e.event.id.as_str() == id)
            .count();
        assert_eq!(n, 1, "{id} stored {n} times");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_gets_413() {
    let mut config = Config::default();
    config.server.max_body_bytes = 1024;
    let h = Harness::new(config).await;
    let events: Vec<Value> = (0..20)
        .map(|i| event(&format!("big-{i}"), "alice"))
        .collect();
    let body = ndjson(&events);
    assert!(body.len() > 1024);
    let r = h
        .call(Req::new("POST", "/v1/events", Cred::Ingest).body("application/x-ndjson", body))
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text());
    let log = h.log().await;
    assert!(
        !log.iter()
            .any(|(e, _)| e.event.id.as_str().starts_with("big-"))
    );
    // Under the limit it goes through.
    let r = h
        .call(
            Req::new("POST", "/v1/events", Cred::Ingest)
                .body("application/x-ndjson", ndjson(&events[..2])),
        )
        .await;
    r.expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_error_has_the_contracts_shape() {
    let mut config = Config::default();
    config.server.max_body_bytes = 1024;
    let h = Harness::new(config).await;
    let r = h
        .call(
            Req::new("POST", "/v1/events", Cred::Ingest)
                .body("application/x-ndjson", vec![b' '; 4096]),
        )
        .await;
    r.expect(413);
    // PRODUCT.md: errors as {"error":{"code":"...","message":"..."}}.
    r.error_code();
    assert!(
        r.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json")),
        "{:?}",
        r.headers
    );
}

// ---------------------------------------------------------------------------------------
// Reading.

#[derive(Deserialize)]
struct WithReceipt {
    event: Box<RawValue>,
    receipt: Receipt,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_comes_with_a_receipt_that_verifies() {
    let h = Harness::new(Config::default()).await;
    let batch: Vec<Value> = (0..7).map(|i| event(&format!("rc-{i}"), "erin")).collect();
    let r = h
        .call(
            Req::new("POST", "/v1/events", Cred::Ingest)
                .body("application/x-ndjson", ndjson(&batch)),
        )
        .await;
    r.expect(200);
    let v = r.json();
    let (first, last) = (
        v["first_index"].as_u64().unwrap(),
        v["last_index"].as_u64().unwrap(),
    );

    // The public verifier key is the store's.
    let key_text = h.call(Req::new("GET", "/v1/key", Cred::None)).await;
    key_text.expect(200);
    let key: vellum_note::VerifierKey = key_text.text().trim().parse().unwrap();
    assert_eq!(key.to_string(), h.state.store.verifier_key().to_string());

    let reader = LogReader::open(h.dir.path()).unwrap();
    // Index 0 is the first key.created; the batch was not checkpointed yet when asked.
    for index in [0, first, first + 3, last] {
        let r = h
            .call(Req::new(
                "GET",
                &format!("/v1/events/{index}"),
                Cred::Auditor,
            ))
            .await;
        r.expect(200);
        let got: WithReceipt = serde_json::from_slice(&r.body).unwrap();
        let cp = got
            .receipt
            .verify(&key)
            .unwrap_or_else(|e| panic!("receipt for {index} does not verify: {e}"));
        assert_eq!(got.receipt.index, index);
        assert_eq!(cp.size.0, got.receipt.tree_size);
        assert!(got.receipt.tree_size > index);
        let stored = reader.read(index).unwrap();
        assert_eq!(
            got.receipt.event.get().as_bytes(),
            stored.as_slice(),
            "receipt event bytes"
        );
        assert_eq!(got.event.get().as_bytes(), stored.as_slice(), "event bytes");
        if (first..=last).contains(&index) {
            let e = StoredEvent::parse(&stored).unwrap();
            assert_eq!(e.event.id.as_str(), format!("rc-{}", index - first));
        }
        // A changed event no longer verifies.
        let mut tampered = got.receipt.clone();
        let text = tampered
            .event
            .get()
            .replace("\"outcome\":\"success\"", "\"outcome\":\"failure\"");
        if text != tampered.event.get() {
            tampered.event = RawValue::from_string(text).unwrap();
            assert!(tampered.verify(&key).is_err());
        }
    }

    // Beyond the log, and not a number.
    let size = h.state.store.tree_size();
    let r = h
        .call(Req::new(
            "GET",
            &format!("/v1/events/{}", size + 10),
            Cred::Auditor,
        ))
        .await;
    r.expect(404);
    assert_eq!(r.error_code(), "not_found");
    let r = h
        .call(Req::new("GET", "/v1/events/-1", Cred::Auditor))
        .await;
    r.expect(400);
    r.error_code();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_pages_return_every_match_once() {
    let h = Harness::new(Config::default()).await;
    let total = 250;
    let mut want = BTreeSet::new();
    for chunk in 0..5 {
        // Interleave non-matching events so pages are not contiguous.
        let mut batch = Vec::new();
        for i in 0..total / 5 {
            let id = format!("pg-{chunk}-{i}");
            batch.push(event(&id, "pager"));
            want.insert(id);
            batch.push(event(&format!("other-{chunk}-{i}"), "someone-else"));
        }
        h.call(
            Req::new("POST", "/v1/events", Cred::Ingest)
                .body("application/x-ndjson", ndjson(&batch)),
        )
        .await
        .expect(200);
    }

    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    let mut last_index = None;
    loop {
        let path = match &cursor {
            None => "/v1/events?user=pager&limit=40".to_string(),
            Some(c) => format!("/v1/events?user=pager&limit=40&cursor={c}"),
        };
        let r = h.call(Req::new("GET", &path, Cred::Auditor)).await;
        r.expect(200);
        let v = r.json();
        let events = v["events"].as_array().unwrap();
        assert!(events.len() <= 40);
        for e in events {
            let idx = e["index"].as_u64().unwrap();
            assert!(last_index.is_none_or(|l| idx > l), "pages out of order");
            last_index = Some(idx);
            assert_eq!(e["actor"]["user"], "pager", "{e}");
            *seen
                .entry(e["id"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        pages += 1;
        assert!(pages < 100, "paging does not end");
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => {
                assert!(v["next_cursor"].is_null(), "{}", v["next_cursor"]);
                break;
            }
        }
    }
    let dup: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dup.is_empty(), "returned more than once: {dup:?}");
    let got: BTreeSet<String> = seen.into_keys().collect();
    assert_eq!(got, want);
    assert!(pages >= 7, "{pages} pages for 250 events at 40 a page");

    // Every page was an audited read.
    let log = h.log().await;
    let reads = log
        .iter()
        .filter(|(e, _)| {
            e.event.action == "audit_log.read"
                && str_at(&e.event.actor, "key_id").as_deref() == Some(h.ids["auditor"].as_str())
        })
        .count();
    assert_eq!(reads, pages);

    // Filters and bad parameters.
    let r = h
        .call(Req::new(
            "GET",
            "/v1/events?category=admin&action=key.created&limit=1000",
            Cred::Admin,
        ))
        .await;
    r.expect(200);
    let v = r.json();
    let evs = v["events"].as_array().unwrap();
    assert!(!evs.is_empty(), "{v}");
    assert!(evs.iter().all(|e| e["action"] == "key.created"));
    for bad in [
        "/v1/events?limit=0",
        "/v1/events?limit=1001",
        "/v1/events?cursor=abc",
        "/v1/events?category=nope",
        "/v1/events?outcome=maybe",
        "/v1/events?ip=10.0.0",
        "/v1/events?since=yesterday",
        "/v1/events?bogus=1",
    ] {
        let r = h.call(Req::new("GET", bad, Cred::Auditor)).await;
        r.expect(400);
        r.error_code();
    }
}

// ---------------------------------------------------------------------------------------
// Operations.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_appends_and_requests() {
    let h = Harness::new(Config::default()).await;
    h.call(
        Req::new("POST", "/v1/events", Cred::Ingest)
            .body("application/json", event("m-1", "a").to_string()),
    )
    .await
    .expect(200);
    h.call(Req::new("GET", "/v1/events", Cred::None))
        .await
        .expect(401);
    let r = h.call(Req::new("GET", "/metrics", Cred::None)).await;
    r.expect(200);
    let text = r.text();
    assert!(
        r.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
        "{:?}",
        r.headers
    );
    for want in [
        "vellum_events_appended_total",
        "vellum_http_request_seconds",
        "vellum_http_request_seconds_count{route=\"/v1/events\",status=\"200\"} 1",
        "vellum_http_request_seconds_count{route=\"/v1/events\",status=\"401\"} 1",
        "vellum_auth_failures_total 1",
        "# TYPE vellum_index_lag_events gauge",
    ] {
        assert!(text.contains(want), "/metrics lacks {want:?}:\n{text}");
    }
    let appended: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("vellum_events_appended_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(appended >= 1, "{appended}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_from_one_address_raise_brute_force() {
    let mut config = Config::default();
    config.auth.brute_force_threshold = 3;
    config.auth.max_delay_ms = 20;
    let h = Harness::new(config).await;
    let attacker = ip("192.0.2.66");
    let started = std::time::Instant::now();
    for _ in 0..6 {
        h.call(Req::new("GET", "/v1/events", Cred::Wrong).from(attacker))
            .await
            .expect(401);
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "delays are capped by max_delay_ms"
    );
    // Another address below the threshold is not flagged.
    for _ in 0..2 {
        h.call(Req::new("GET", "/v1/events", Cred::None).from(ip("192.0.2.67")))
            .await
            .expect(401);
    }
    let log = h.log().await;
    let flagged: Vec<_> = log
        .iter()
        .map(|(e, _)| e)
        .filter(|e| {
            e.event.category == Category::Security && e.event.action == "brute_force.suspected"
        })
        .collect();
    assert_eq!(flagged.len(), 1, "{flagged:?}");
    assert_eq!(flagged[0].event.ip().as_deref(), Some("192.0.2.66"));
    let failures = log
        .iter()
        .filter(|(e, _)| {
            e.event.category == Category::Authentication
                && e.event.ip().as_deref() == Some("192.0.2.66")
        })
        .count();
    assert_eq!(failures, 6);
    let m = h.call(Req::new("GET", "/metrics", Cred::None)).await;
    assert!(
        m.text().contains("vellum_brute_force_suspected_total 1"),
        "{}",
        m.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_get_a_json_404() {
    let h = Harness::new(Config::default()).await;
    let r = h.call(Req::new("GET", "/v1/nope", Cred::Admin)).await;
    r.expect(404);
    assert_eq!(r.error_code(), "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_method_error_has_the_contracts_shape() {
    let h = Harness::new(Config::default()).await;
    let r = h.call(Req::new("PUT", "/v1/events", Cred::Admin)).await;
    r.expect(405);
    // PRODUCT.md: errors as {"error":{"code":"...","message":"..."}}.
    r.error_code();
}
