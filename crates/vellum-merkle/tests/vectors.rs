//! Known-answer tests: the shared RFC 6962 proof vectors (see the README next to them).
//!
//! Every happy path must verify, every `wantErr` vector must be rejected, and for the 8-leaf
//! reference tree behind folders `1` and `2`, `MemoryTree` must generate exactly the proofs
//! the happy paths carry.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::Value;
use vellum_merkle::{
    Hash, LeafIndex, MemoryTree, TreeSize, consistency_proof, inclusion_proof, leaf_hash, root,
    verify_consistency, verify_inclusion,
};

/// `../shared/testdata/rfc6962` next to the repository. The crate's directory is taken from
/// the environment `cargo test` runs the test in, not the one it was compiled in: another
/// clone sharing the target directory may have built this binary.
fn vectors() -> PathBuf {
    let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    crate_dir.join("../../../shared/testdata/rfc6962")
}

/// The leaves (hex) of the reference tree behind folders `1` and `2`.
const REFERENCE_LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];
const REFERENCE_ROOT_8: &str = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328";
/// The folders whose vectors are drawn from the reference tree.
const REFERENCE_FOLDERS: [&str; 2] = ["1", "2"];

/// Every field optional: a vector may leave any of them null or out, and a verifier must
/// still give an answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InclusionVector {
    leaf_idx: Option<Value>,
    tree_size: Option<Value>,
    root: Option<String>,
    leaf_hash: Option<String>,
    proof: Option<Vec<Option<String>>>,
    desc: Option<String>,
    want_err: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct ConsistencyVector {
    size1: Option<Value>,
    size2: Option<Value>,
    root1: Option<String>,
    root2: Option<String>,
    proof: Option<Vec<Option<String>>>,
    desc: Option<String>,
    #[serde(rename = "wantErr")]
    want_err: Option<bool>,
}

/// A vector, parsed into the library's types as far as it goes. `Err` is a field that cannot
/// be expressed (not a u64, not 32 bytes of base64): for a verifier, a rejection.
struct Parsed<T> {
    folder: String,
    file: String,
    desc: String,
    want_err: bool,
    input: Result<T, String>,
}

struct Inclusion {
    leaf: Hash,
    index: LeafIndex,
    size: TreeSize,
    proof: Vec<Hash>,
    root: Hash,
}

struct Consistency {
    size1: TreeSize,
    size2: TreeSize,
    proof: Vec<Hash>,
    root1: Hash,
    root2: Hash,
}

fn number(field: &str, v: &Option<Value>) -> Result<u64, String> {
    v.as_ref()
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("{field} is not a u64: {v:?}"))
}

fn hash(field: &str, v: &Option<String>) -> Result<Hash, String> {
    let text = v.as_deref().ok_or_else(|| format!("{field} is missing"))?;
    let bytes = STANDARD
        .decode(text)
        .map_err(|e| format!("{field} is not base64: {e}"))?;
    Hash::from_slice(&bytes).map_err(|e| format!("{field}: {e}"))
}

/// A null or missing proof is the empty proof (what a Go `nil` slice serializes to).
fn proof(v: &Option<Vec<Option<String>>>) -> Result<Vec<Hash>, String> {
    v.iter()
        .flatten()
        .enumerate()
        .map(|(i, h)| hash(&format!("proof[{i}]"), h))
        .collect()
}

/// All `*.json` files in the subfolders of `kind`, sorted, as (subfolder, file, contents).
fn files(kind: &str) -> Vec<(String, String, String)> {
    let base = vectors().join(kind);
    let mut folders: Vec<PathBuf> = fs::read_dir(&base)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", base.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    let mut out = Vec::new();
    for folder in folders {
        let folder_name = folder.file_name().unwrap().to_string_lossy().into_owned();
        let mut jsons: Vec<PathBuf> = fs::read_dir(&folder)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        jsons.sort();
        assert!(
            !jsons.is_empty(),
            "no vectors in {} (the test would pass vacuously)",
            folder.display()
        );
        for path in jsons {
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            out.push((
                folder_name.clone(),
                file,
                fs::read_to_string(&path).unwrap(),
            ));
        }
    }
    assert!(
        !out.is_empty(),
        "no vectors under {} (the test would pass vacuously)",
        base.display()
    );
    out
}

fn inclusion_vectors() -> Vec<Parsed<Inclusion>> {
    files("inclusion")
        .into_iter()
        .map(|(folder, file, text)| {
            let v: InclusionVector = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("inclusion/{folder}/{file}: {e}"));
            let input = (|| {
                Ok(Inclusion {
                    leaf: hash("leafHash", &v.leaf_hash)?,
                    index: LeafIndex(number("leafIdx", &v.leaf_idx)?),
                    size: TreeSize(number("treeSize", &v.tree_size)?),
                    proof: proof(&v.proof)?,
                    root: hash("root", &v.root)?,
                })
            })();
            Parsed {
                desc: v.desc.unwrap_or_else(|| file.clone()),
                want_err: v.want_err.unwrap_or(false),
                folder,
                file,
                input,
            }
        })
        .collect()
}

fn consistency_vectors() -> Vec<Parsed<Consistency>> {
    files("consistency")
        .into_iter()
        .map(|(folder, file, text)| {
            let v: ConsistencyVector = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("consistency/{folder}/{file}: {e}"));
            let input = (|| {
                Ok(Consistency {
                    size1: TreeSize(number("size1", &v.size1)?),
                    size2: TreeSize(number("size2", &v.size2)?),
                    proof: proof(&v.proof)?,
                    root1: hash("root1", &v.root1)?,
                    root2: hash("root2", &v.root2)?,
                })
            })();
            Parsed {
                desc: v.desc.unwrap_or_else(|| file.clone()),
                want_err: v.want_err.unwrap_or(false),
                folder,
                file,
                input,
            }
        })
        .collect()
}

/// Checks one verdict against `wantErr`; returns a description of a wrong verdict.
fn judge<T>(
    kind: &str,
    v: &Parsed<T>,
    verify: impl Fn(&T) -> Result<(), String>,
) -> Option<String> {
    let verdict = v.input.as_ref().map_err(Clone::clone).and_then(&verify);
    match (v.want_err, verdict) {
        (true, Ok(())) => Some(format!(
            "{kind}/{}/{} ({}): accepted, want rejection",
            v.folder, v.file, v.desc
        )),
        (false, Err(e)) => Some(format!(
            "{kind}/{}/{} ({}): rejected ({e}), want acceptance",
            v.folder, v.file, v.desc
        )),
        _ => None,
    }
}

#[test]
fn inclusion_vectors_give_the_expected_verdicts() {
    let vectors = inclusion_vectors();
    assert!(vectors.iter().any(|v| !v.want_err), "no happy paths");
    assert!(vectors.iter().any(|v| v.want_err), "no rejections");
    let wrong: Vec<String> = vectors
        .iter()
        .filter_map(|v| {
            judge("inclusion", v, |x| {
                verify_inclusion(&x.leaf, x.index, x.size, &x.proof, &x.root)
                    .map_err(|e| e.to_string())
            })
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} wrong verdicts:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn consistency_vectors_give_the_expected_verdicts() {
    let vectors = consistency_vectors();
    assert!(vectors.iter().any(|v| !v.want_err), "no happy paths");
    assert!(vectors.iter().any(|v| v.want_err), "no rejections");
    let wrong: Vec<String> = vectors
        .iter()
        .filter_map(|v| {
            judge("consistency", v, |x| {
                verify_consistency(x.size1, x.size2, &x.proof, &x.root1, &x.root2)
                    .map_err(|e| e.to_string())
            })
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} wrong verdicts:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

fn reference_tree() -> MemoryTree {
    let mut tree = MemoryTree::new();
    for hex in REFERENCE_LEAVES {
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        tree.push(leaf_hash(&bytes));
    }
    tree
}

#[test]
fn reference_tree_has_the_published_root() {
    let tree = reference_tree();
    assert_eq!(tree.size(), TreeSize(8));
    assert_eq!(tree.root().to_hex(), REFERENCE_ROOT_8);
    assert_eq!(root(&tree, TreeSize(8)).unwrap().to_hex(), REFERENCE_ROOT_8);
}

#[test]
fn memory_tree_generates_the_happy_path_inclusion_proofs() {
    let tree = reference_tree();
    let mut seen = 0;
    for v in inclusion_vectors() {
        if v.want_err || !REFERENCE_FOLDERS.contains(&v.folder.as_str()) {
            continue;
        }
        let x = v.input.unwrap();
        let leaf = tree.get(vellum_merkle::NodeId::leaf(x.index.0)).unwrap();
        assert_eq!(leaf, x.leaf, "{}/{}: leaf hash", v.folder, v.file);
        assert_eq!(
            root(&tree, x.size).unwrap(),
            x.root,
            "{}/{}: root",
            v.folder,
            v.file
        );
        let proof = inclusion_proof(&tree, x.index, x.size).unwrap();
        assert_eq!(proof, x.proof, "{}/{}: proof", v.folder, v.file);
        seen += 1;
    }
    assert!(
        seen > 0,
        "no happy-path inclusion vectors on the reference tree"
    );
}

#[test]
fn memory_tree_generates_the_happy_path_consistency_proofs() {
    let tree = reference_tree();
    let mut seen = 0;
    for v in consistency_vectors() {
        if v.want_err || !REFERENCE_FOLDERS.contains(&v.folder.as_str()) {
            continue;
        }
        let x = v.input.unwrap();
        assert_eq!(
            root(&tree, x.size1).unwrap(),
            x.root1,
            "{}/{}: root1",
            v.folder,
            v.file
        );
        assert_eq!(
            root(&tree, x.size2).unwrap(),
            x.root2,
            "{}/{}: root2",
            v.folder,
            v.file
        );
        let proof = consistency_proof(&tree, x.size1, x.size2).unwrap();
        assert_eq!(proof, x.proof, "{}/{}: proof", v.folder, v.file);
        seen += 1;
    }
    assert!(
        seen > 0,
        "no happy-path consistency vectors on the reference tree"
    );
}
