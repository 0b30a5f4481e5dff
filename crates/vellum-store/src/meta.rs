//! The log's identity: `vellum.json` (format version, origin) and `signing.key` (the
//! Ed25519 seed, mode 0600). Both are created with the data directory and never change:
//! a new origin or key would start a different log.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use serde::{Deserialize, Serialize};
use vellum_note::{KeyName, Signer, VerifierKey};

use crate::error::{IoContext, Result, StoreError};
use crate::layout::{self, Layout};

pub(crate) const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct Meta {
    pub format: u32,
    pub origin: String,
    /// The public half of `signing.key`, in signed-note verifier-key form, so that readers
    /// and auditors never need the secret.
    pub verifier_key: String,
    pub created: String,
}

impl Meta {
    pub(crate) fn load(layout: &Layout) -> Result<Meta> {
        let path = layout.file(layout::META);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let root = layout.root();
                // A directory holding other things is not a log yet to be made (what an
                // interrupted creation leaves, the lock, the key, temporary files and the
                // two directories, is: the next writer finishes it).
                let left_by_creation = |name: &str| {
                    [
                        layout::LOCK,
                        layout::SIGNING_KEY,
                        layout::SEGMENTS,
                        layout::TREE,
                    ]
                    .contains(&name)
                        || name.ends_with(".tmp")
                };
                let holds_something = fs::read_dir(root).is_ok_and(|d| {
                    d.filter_map(|e| e.ok())
                        .any(|e| !left_by_creation(&e.file_name().to_string_lossy()))
                });
                return Err(if holds_something {
                    StoreError::unusable(
                        root,
                        "not a Vellum data directory (it has no vellum.json, and holds other files)",
                    )
                } else {
                    StoreError::NotFound(root.to_path_buf())
                });
            }
            Err(e) => return Err(e).ctx(|| format!("reading {}", path.display())),
        };
        let meta: Meta = serde_json::from_slice(&bytes).map_err(|e| {
            StoreError::corrupt(&path, format!("not a Vellum data directory file: {e}"))
        })?;
        if meta.format != FORMAT {
            return Err(StoreError::unusable(
                &path,
                format!(
                    "data format {} is not supported (this build reads {FORMAT})",
                    meta.format
                ),
            ));
        }
        Ok(meta)
    }

    /// The verifier key recorded at creation.
    pub(crate) fn key(&self, layout: &Layout) -> Result<VerifierKey> {
        self.verifier_key.parse().map_err(|e| {
            StoreError::corrupt(layout.file(layout::META), format!("verifier_key: {e}"))
        })
    }

    pub(crate) fn create(layout: &Layout, origin: &str, key: &VerifierKey) -> Result<Meta> {
        let meta = Meta {
            format: FORMAT,
            origin: origin.to_string(),
            verifier_key: key.to_string(),
            created: vellum_event::Timestamp::now().to_string(),
        };
        let mut text = serde_json::to_vec_pretty(&meta)
            .map_err(|e| StoreError::InvalidOption(e.to_string()))?;
        text.push(b'\n');
        layout::write_atomic(&layout.file(layout::META), &text, 0o644)?;
        Ok(meta)
    }
}

/// The default origin: `vellum/<hostname>`.
pub fn default_origin() -> String {
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '+')
        .collect();
    format!(
        "vellum/{}",
        if host.is_empty() { "localhost" } else { &host }
    )
}

/// Parses an origin: non-empty, no whitespace, no `+` (it is also the key name).
pub(crate) fn parse_origin(origin: &str) -> Result<KeyName> {
    origin
        .parse::<KeyName>()
        .map_err(|e| StoreError::InvalidOption(format!("origin `{origin}`: {e}")))
}

/// Loads the signing key, or creates it (0600) when `create` is set and it is missing.
pub(crate) fn load_signer(layout: &Layout, origin: &str, create: bool) -> Result<Signer> {
    let name = parse_origin(origin)?;
    let path = layout.file(layout::SIGNING_KEY);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let mode = fs::metadata(&path)
                .ctx(|| format!("reading {}", path.display()))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(StoreError::unusable(
                    &path,
                    format!(
                        "the signing key is readable by others (mode {:o}); chmod 600 it",
                        mode & 0o777
                    ),
                ));
            }
            let seed = decode_seed(text.trim())
                .ok_or_else(|| StoreError::corrupt(&path, "not an Ed25519 signing key"))?;
            Ok(Signer::from_seed(name, seed))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| StoreError::Io {
                context: "generating the signing key".into(),
                source: std::io::Error::other(e.to_string()),
            })?;
            let text = format!("ed25519-seed-hex {}\n", hex(&seed));
            layout::write_atomic(&path, text.as_bytes(), 0o600)?;
            Ok(Signer::from_seed(name, seed))
        }
        Err(e) => Err(e).ctx(|| format!("reading {}", path.display())),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_seed(text: &str) -> Option<[u8; 32]> {
    let h = text.strip_prefix("ed25519-seed-hex ")?;
    if h.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(h.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}
