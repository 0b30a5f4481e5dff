//! Integration tests of the `vellum` binary: each drives the real executable on a data
//! directory in a temporary folder, then tampers with it, feeds it bad input or reads it
//! back, and checks exit status and messages.
//!
//! - `tamper`: every way of altering a log on disk that `vellum verify` must catch, each
//!   naming the first bad index and file.
//! - `receipts`: receipts verify offline, and altered ones do not.
//! - `bad_input`: `vellum append` rejects bad NDJSON as a whole and writes nothing.
//! - `data_dir`: corrupt or foreign files in a data directory are refused, not repaired.
//! - `reading`: query filters, export, proofs, tail and API keys return what was stored.
//!
//! The shared machinery (running the binary, generating events, editing framed files) is
//! in `util`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

mod bad_input;
mod data_dir;
mod reading;
mod receipts;
mod tamper;
