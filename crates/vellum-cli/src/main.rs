//! `vellum`: the command-line face of the store. A thin layer: parse flags, call the
//! store, print. Exit status: 0 success, 1 integrity failure or failed check, 2 usage or
//! I/O error.

/// Like `println!`, but a closed stdout (`vellum export | head`) ends the command quietly
/// instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?;
    }};
}
/// Like `eprintln!`, but a stderr that cannot be written (`2>/dev/full`, a closed pipe)
/// loses the message instead of panicking in the middle of a command.
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)?;
    }};
}

mod args;
mod output;
mod read;
mod receipt;
mod serve;
mod write;

use std::process::ExitCode;

/// Events are many small maps and strings, parsed and dropped on several threads at once;
/// mimalloc's per-thread free lists make that cheaper than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;

use crate::args::{Cli, Command, KeysCommand, ProveCommand};

/// A check that ran and failed (exit 1), as opposed to an error (exit 2).
#[derive(Debug)]
pub(crate) struct CheckFailed(pub String);

impl std::fmt::Display for CheckFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CheckFailed {}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.to_string().contains("Broken pipe")
    })
}

/// Whether a command stopped on data that is not what the store wrote: an integrity
/// failure (exit 1, as `verify` reports it), not a usage or I/O error, whichever command met
/// it (`export`, `query`, `append` opening a damaged log, ...).
fn is_damage(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<vellum_store::StoreError>(),
            Some(vellum_store::StoreError::Corrupt { .. })
        )
    })
}

fn main() -> ExitCode {
    // Vellum's memory is mostly buffers filled once and dropped: huge pages would make
    // each first touch zero 2 MiB and send the kernel compacting memory to find them. With
    // them `vellum append` of 1M events spent twice the system time (BENCHMARKS.md,
    // section 3). Only a hint: where it is refused, nothing else changes.
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    let cli = Cli::parse();
    let data = cli.data.clone();
    let result = match cli.command {
        Command::Serve(a) => serve::serve(&data, &cli.store, a),
        Command::Append(a) => write::append(&data, &cli.store, a),
        Command::Verify(a) => read::verify(&data, a),
        Command::Checkpoint => read::checkpoint(&data),
        Command::Key => read::key(&data),
        Command::Prove { what } => match what {
            ProveCommand::Inclusion { index, size } => read::prove_inclusion(&data, index, size),
            ProveCommand::Consistency { from, to } => read::prove_consistency(&data, from, to),
        },
        Command::Receipt { index } => receipt::receipt(&data, index),
        Command::VerifyReceipt { key, file } => receipt::verify_receipt(&key, &file),
        Command::Export(a) => read::export(&data, a),
        Command::Query(a) => read::query(&data, a),
        Command::Tail(a) => read::tail(&data, a),
        Command::Keys { what } => match what {
            KeysCommand::Create { name, role } => {
                write::keys_create(&data, &cli.store, &name, &role)
            }
            KeysCommand::List => read::keys_list(&data),
            KeysCommand::Revoke { id } => write::keys_revoke(&data, &cli.store, &id),
        },
        Command::Prune(a) => write::prune(&data, &cli.store, a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<CheckFailed>().is_some() => {
            errln!("vellum: {}", describe(&e));
            ExitCode::from(1)
        }
        Err(e) if is_damage(&e) => {
            errln!("vellum: integrity failure: {}", describe(&e));
            ExitCode::from(1)
        }
        Err(e) => {
            errln!("vellum: error: {}", describe(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes, `: `-separated, each cause once: an error that already
/// ends with its cause's text (`reading X: Not a directory`) does not repeat it.
fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}
