//! API keys (`keys.json`): who may do what with the log.
//!
//! A key's secret is shown once, when it is created, and stored only as its SHA-256.
//! Tokens look like `vk-<8 hex id>-<64 hex secret>`; the id part finds the record, the hash
//! of the whole token is compared in constant time. The file is replaced atomically.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use vellum_event::Timestamp;

use crate::error::{IoContext, Result, StoreError};
use crate::layout::{self, Layout};

/// What a key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including key management.
    Admin,
    /// Append events only.
    Ingest,
    /// Read, verify and export.
    Auditor,
    /// Call the gateway.
    Client,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Ingest => "ingest",
            Role::Auditor => "auditor",
            Role::Client => "client",
        }
    }
}

impl FromStr for Role {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "admin" => Ok(Role::Admin),
            "ingest" => Ok(Role::Ingest),
            "auditor" => Ok(Role::Auditor),
            "client" => Ok(Role::Client),
            other => Err(StoreError::InvalidOption(format!(
                "unknown role `{other}`: expected admin, ingest, auditor or client"
            ))),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// One key as stored (no secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
    /// Whether the revocation's audit event is known to be in the log. Set only once the
    /// caller has recorded it ([`ApiKeys::revocation_recorded`]), so that a revocation whose
    /// event failed is answered as new again, and recorded, when it is retried. (Absent in
    /// files written before it existed: recorded.)
    #[serde(default = "recorded", skip_serializing_if = "is_recorded")]
    pub revocation_recorded: bool,
    /// Hex SHA-256 of the token.
    pub hash: String,
}

fn recorded() -> bool {
    true
}

fn is_recorded(r: &bool) -> bool {
    *r
}

/// A key just created: the record and its token, to be shown once.
#[derive(Clone, Debug)]
pub struct NewKey {
    pub key: ApiKey,
    pub token: String,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    keys: Vec<ApiKey>,
}

/// The key file of a data directory.
#[derive(Debug, Clone)]
pub struct ApiKeys {
    layout: Layout,
}

impl ApiKeys {
    pub fn new(dir: impl Into<std::path::PathBuf>) -> Self {
        Self {
            layout: Layout::new(dir),
        }
    }

    pub fn list(&self) -> Result<Vec<ApiKey>> {
        Ok(self.load()?.keys)
    }

    fn load(&self) -> Result<KeysFile> {
        let path = self.layout.file(layout::KEYS);
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| StoreError::corrupt(&path, format!("not a key file: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KeysFile::default()),
            Err(e) => Err(e).ctx(|| format!("reading {}", path.display())),
        }
    }

    fn save(&self, file: &KeysFile) -> Result<()> {
        let mut text = serde_json::to_vec_pretty(file)
            .map_err(|e| StoreError::InvalidOption(e.to_string()))?;
        text.push(b'\n');
        layout::write_atomic(&self.layout.file(layout::KEYS), &text, 0o600)
    }

    /// Creates a key; the token is in the result and nowhere else.
    pub fn create(&self, name: &str, role: Role) -> Result<NewKey> {
        if name.trim().is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            return Err(StoreError::InvalidOption(
                "a key name is 1 to 128 characters, not all spaces, no control characters".into(),
            ));
        }
        let mut file = self.load()?;
        let mut random = [0u8; 36];
        getrandom::fill(&mut random).map_err(|e| StoreError::Io {
            context: "generating a key".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let id_hex = hex(&random[..4]);
        let token = format!("vk-{id_hex}-{}", hex(&random[4..]));
        let key = ApiKey {
            id: format!("k_{id_hex}"),
            name: name.to_string(),
            role,
            created: Timestamp::now().to_string(),
            revoked: None,
            revocation_recorded: true,
            hash: hex(&Sha256::digest(token.as_bytes())),
        };
        if file.keys.iter().any(|k| k.id == key.id) {
            return Err(StoreError::InvalidOption(
                "key id collision; try again".into(),
            ));
        }
        file.keys.push(key.clone());
        self.save(&file)?;
        Ok(NewKey { key, token })
    }

    /// Revokes a key by id; it stops working at once. Returns the key as revoked.
    pub fn revoke(&self, id: &str) -> Result<Revocation> {
        let mut file = self.load()?;
        let key = file
            .keys
            .iter_mut()
            .find(|k| k.id == id)
            .ok_or_else(|| StoreError::InvalidOption(format!("no key with id `{id}`")))?;
        match &key.revoked {
            // Revoked once, at the time first recorded, and its event is in the log.
            Some(at) if key.revocation_recorded => {
                return Ok(Revocation::AlreadyRevoked {
                    at: at.clone(),
                    key: key.clone(),
                });
            }
            // Revoked, but its event never made it to the log: the caller records it now.
            Some(_) => return Ok(Revocation::Revoked(key.clone())),
            None => {}
        }
        key.revoked = Some(Timestamp::now().to_string());
        key.revocation_recorded = false;
        let out = key.clone();
        self.save(&file)?;
        Ok(Revocation::Revoked(out))
    }

    /// Notes that the `key.revoked` event of key `id` is durably in the log, so that
    /// revoking it again changes and records nothing.
    pub fn revocation_recorded(&self, id: &str) -> Result<()> {
        let mut file = self.load()?;
        if let Some(key) = file.keys.iter_mut().find(|k| k.id == id)
            && !key.revocation_recorded
        {
            key.revocation_recorded = true;
            self.save(&file)?;
        }
        Ok(())
    }

    /// The live key a token belongs to, if any.
    pub fn authenticate(&self, token: &str) -> Result<Option<ApiKey>> {
        let keys = self.list()?;
        Ok(match lookup(&keys, token) {
            Lookup::Valid(k) => Some(k.clone()),
            Lookup::Revoked(_) | Lookup::Unknown => None,
        })
    }
}

/// What [`ApiKeys::revoke`] did.
#[derive(Debug, Clone)]
pub enum Revocation {
    /// The key is revoked now (or was, and its audit event is not in the log yet): the
    /// caller records `key.revoked`, then calls [`ApiKeys::revocation_recorded`].
    Revoked(ApiKey),
    /// The key was revoked before, `at` then; nothing changed.
    AlreadyRevoked { key: ApiKey, at: String },
}

impl Revocation {
    pub fn key(&self) -> &ApiKey {
        match self {
            Revocation::Revoked(key) | Revocation::AlreadyRevoked { key, .. } => key,
        }
    }
}

/// What a presented token turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<'a> {
    Valid(&'a ApiKey),
    /// A key that existed and was revoked.
    Revoked(&'a ApiKey),
    /// Not a token of any key (or malformed).
    Unknown,
}

/// Finds the key a token belongs to among `keys`, comparing hashes in constant time.
pub fn lookup<'a>(keys: &'a [ApiKey], token: &str) -> Lookup<'a> {
    let Some(id_hex) = token
        .strip_prefix("vk-")
        .and_then(|rest| rest.split('-').next())
    else {
        return Lookup::Unknown;
    };
    let presented = hex(&Sha256::digest(token.as_bytes()));
    let found = keys.iter().find(|k| {
        k.id.strip_prefix("k_") == Some(id_hex) && ct_eq(k.hash.as_bytes(), presented.as_bytes())
    });
    match found {
        Some(k) if k.revoked.is_none() => Lookup::Valid(k),
        Some(k) => Lookup::Revoked(k),
        None => Lookup::Unknown,
    }
}

/// Compares two byte strings in time that depends only on their lengths.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_authenticate_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let keys = ApiKeys::new(dir.path());
        let new = keys.create("ci", Role::Ingest).unwrap();
        assert!(
            !std::fs::read_to_string(dir.path().join("keys.json"))
                .unwrap()
                .contains(&new.token)
        );
        assert_eq!(
            keys.authenticate(&new.token).unwrap().unwrap().role,
            Role::Ingest
        );
        let mut wrong = new.token.clone();
        wrong.pop();
        wrong.push('x');
        assert!(keys.authenticate(&wrong).unwrap().is_none());
        assert!(keys.authenticate("garbage").unwrap().is_none());
        let first = keys.revoke(&new.key.id).unwrap();
        assert!(matches!(first, Revocation::Revoked(_)));
        assert!(keys.authenticate(&new.token).unwrap().is_none());
        // Its event not recorded yet (say the append failed): a retry is a revocation to
        // record, at the first time.
        let retry = keys.revoke(&new.key.id).unwrap();
        assert!(matches!(retry, Revocation::Revoked(_)));
        assert_eq!(retry.key().revoked, first.key().revoked);
        keys.revocation_recorded(&new.key.id).unwrap();
        // A file from before the flag existed: its revocations count as recorded.
        let legacy = r#"{"id":"k_1","name":"n","role":"ingest","created":"2026-11-26T00:00:00Z","revoked":"2026-11-26T01:00:00Z","hash":"00"}"#;
        let old: ApiKey = serde_json::from_str(legacy).unwrap();
        assert!(old.revocation_recorded);
        assert_eq!(
            serde_json::to_string(&old).unwrap(),
            legacy,
            "written back unchanged"
        );
        let again = keys.revoke(&new.key.id).unwrap();
        assert!(matches!(again, Revocation::AlreadyRevoked { .. }));
        assert_eq!(
            again.key().revoked,
            first.key().revoked,
            "the first time stays"
        );
        assert!(keys.revoke("k_nope").is_err());
    }
}
