//! Flags and commands, as the interface contract in PRODUCT.md names them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "vellum",
    version,
    about = "A tamper-evident audit log for AI services"
)]
pub(crate) struct Cli {
    /// The data directory.
    #[arg(
        long,
        global = true,
        env = "VELLUM_DATA",
        default_value = "./vellum-data",
        help_heading = "Global options"
    )]
    pub data: PathBuf,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options of the store, for the commands that write (`serve` takes them over its
/// configuration file and environment).
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Global options")]
pub(crate) struct StoreArgs {
    /// Origin (and checkpoint key name) of a new log; default `vellum/<hostname>`.
    #[arg(long, global = true, env = "VELLUM_ORIGIN")]
    pub origin: Option<String>,
    /// Seal a segment once it holds this many MiB (default 64).
    #[arg(long, global = true, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub segment_mib: Option<u64>,
    /// Largest accepted event, in bytes, at most 16 MiB (default 1048576).
    #[arg(long, global = true, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=vellum_event::Limits::LARGEST_EVENT_BYTES as u64))]
    pub max_event_bytes: Option<usize>,
    /// How many of the latest events' ids are remembered, so that a re-sent id is answered
    /// as a duplicate; about 34 bytes of memory each (default 1000000).
    #[arg(long, global = true)]
    pub dedupe_window: Option<usize>,
}

impl StoreArgs {
    /// The store's options: these flags over the defaults.
    pub(crate) fn options(&self) -> vellum_store::Options {
        let d = vellum_store::Options::default();
        vellum_store::Options {
            origin: self.origin.clone(),
            segment_max_bytes: self
                .segment_mib
                .map_or(d.segment_max_bytes, |mib| mib << 20),
            dedupe_window: self.dedupe_window.unwrap_or(d.dedupe_window),
            ..d
        }
    }

    /// The limits events are parsed with.
    pub(crate) fn limits(&self) -> vellum_event::Limits {
        let d = vellum_event::Limits::default();
        vellum_event::Limits {
            max_event_bytes: self.max_event_bytes.unwrap_or(d.max_event_bytes),
        }
    }
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Run the audit server (HTTP API) on this data directory.
    Serve(ServeArgs),
    /// Append NDJSON events from stdin: every line is checked before any is appended; a
    /// failure while appending leaves a prefix of the input appended, and says which.
    Append(AppendArgs),
    /// Verify the whole log offline.
    Verify(VerifyArgs),
    /// Print the latest signed checkpoint.
    Checkpoint,
    /// Print the log's verifier key.
    Key,
    /// Print a Merkle proof.
    Prove {
        #[command(subcommand)]
        what: ProveCommand,
    },
    /// Print an event's receipt: the event, its inclusion proof and a signed checkpoint.
    Receipt {
        /// The event's index.
        #[arg(long)]
        index: u64,
    },
    /// Verify a receipt offline with the log's verifier key.
    VerifyReceipt {
        /// The verifier key (`name+id+key`), or a file holding it.
        #[arg(long)]
        key: String,
        /// The receipt (JSON, as `vellum receipt` prints it).
        file: PathBuf,
    },
    /// Export events.
    Export(ExportArgs),
    /// Print the events that match filters, as NDJSON.
    Query(QueryArgs),
    /// Print the last events, and with -f keep printing new ones.
    Tail(TailArgs),
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        what: KeysCommand,
    },
    /// Apply retention: delete sealed segments older than the maximum age.
    Prune(PruneArgs),
}

#[derive(Args, Debug)]
pub(crate) struct AppendArgs {
    /// Events per commit sent to the store.
    #[arg(long, default_value_t = 8192)]
    pub batch: usize,
}

#[derive(Args, Debug)]
pub(crate) struct VerifyArgs {
    /// A checkpoint saved earlier, elsewhere: the log must have grown from it.
    #[arg(long)]
    pub trusted: Vec<PathBuf>,
    /// The verifier key the log must be signed with (default: the one the log records).
    #[arg(long)]
    pub key: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub(crate) enum ProveCommand {
    /// Inclusion of the event at INDEX in the tree of SIZE (default: the latest checkpoint).
    Inclusion {
        /// The event's index.
        #[arg(long)]
        index: u64,
        /// The tree size to prove it in (default: the latest checkpoint's).
        #[arg(long)]
        size: Option<u64>,
    },
    /// That the tree of size FROM is a prefix of the tree of size TO (default: latest checkpoint).
    Consistency {
        /// The smaller tree size, such as a checkpoint saved earlier.
        #[arg(long)]
        from: u64,
        /// The larger tree size (default: the latest checkpoint's).
        #[arg(long)]
        to: Option<u64>,
    },
}

#[derive(Args, Debug, Clone, Default)]
pub(crate) struct FilterArgs {
    /// Events of this category: authentication, api_request, data_access, admin, security or
    /// malfunction.
    #[arg(long)]
    pub category: Option<String>,
    /// Events with this action (as written, e.g. `api_key.used`).
    #[arg(long)]
    pub action: Option<String>,
    /// Events with this outcome: success, failure or unknown.
    #[arg(long)]
    pub outcome: Option<String>,
    /// Events of this user (`actor.user`, as written).
    #[arg(long)]
    pub user: Option<String>,
    /// Events from this address (`source.ip`), however it is written.
    #[arg(long)]
    pub ip: Option<String>,
    /// Events at or after this time (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Events before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// At most this many events.
    #[arg(long)]
    pub limit: Option<usize>,
}

#[derive(Args, Debug)]
pub(crate) struct ExportArgs {
    /// ndjson: the stored events; leaf: base64 of the exact bytes hashed as each leaf.
    #[arg(long, default_value = "ndjson", value_parser = ["ndjson", "leaf"])]
    pub format: String,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args, Debug)]
pub(crate) struct QueryArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args, Debug)]
pub(crate) struct TailArgs {
    /// Keep printing events as they are appended.
    #[arg(short, long)]
    pub follow: bool,
    /// How many of the last events to print first.
    #[arg(short = 'n', long, default_value_t = 10)]
    pub lines: u64,
}

#[derive(Subcommand, Debug)]
pub(crate) enum KeysCommand {
    /// Create a key; its secret is printed once.
    Create {
        /// A name to know the key by (the caller, the service).
        #[arg(long)]
        name: String,
        /// admin, ingest, auditor or client.
        #[arg(long)]
        role: String,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by id.
    Revoke {
        /// The key's id, as `keys list` shows it (`k_…`).
        id: String,
    },
}

#[derive(Args, Debug)]
pub(crate) struct PruneArgs {
    /// Delete sealed segments whose newest event is older than this many days.
    #[arg(long, default_value_t = 90)]
    pub max_age_days: u64,
    /// Refuse to delete anything (legal hold); reports what is held.
    #[arg(long)]
    pub legal_hold: bool,
}

#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// Address of the audit API (default 127.0.0.1:7700, or the config file's).
    #[arg(long, env = "VELLUM_LISTEN")]
    pub listen: Option<std::net::SocketAddr>,
    /// A vellum.toml (see vellum.example.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
}
