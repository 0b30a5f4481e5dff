//! Read-only commands; all of them work beside a running writer.

use std::io::{BufWriter, Write};
use std::ops::ControlFlow;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use vellum_event::{Filter, FilterText, StoredEvent};
use vellum_store::{ApiKeys, LogReader, VerifyOptions};

use crate::CheckFailed;
use crate::args::{ExportArgs, FilterArgs, QueryArgs, TailArgs, VerifyArgs};
use crate::output::{b64, b64_hashes, open_reader, progress};

pub(crate) fn verify(data: &Path, args: VerifyArgs) -> anyhow::Result<()> {
    let mut trusted = Vec::new();
    for path in &args.trusted {
        let note = std::fs::read_to_string(path)
            .with_context(|| format!("reading trusted checkpoint {}", path.display()))?;
        // A file that is not a signed checkpoint at all (no checkpoint text, then a blank
        // line) is a wrong argument (exit 2); one that is, whatever its signature lines
        // hold, is checked: a bad signature or a mismatch is a failed check (exit 1).
        note.split_once("\n\n")
            .ok_or_else(|| anyhow::anyhow!("no blank line before signature lines"))
            .and_then(|(text, _)| {
                vellum_note::Checkpoint::parse_text(&format!("{text}\n"))
                    .map_err(|e| anyhow::anyhow!("{e}"))
            })
            .with_context(|| format!("{} is not a signed checkpoint", path.display()))?;
        trusted.push((note, path.display().to_string()));
    }
    let key = match &args.key {
        Some(k) => Some(read_key(k)?),
        None => None,
    };
    let bar = progress(0, "verifying");
    let report_progress = |done: u64, total: u64| {
        if let Some(b) = &bar {
            b.set_length(total);
            b.set_position(done);
        }
    };
    let opts = VerifyOptions {
        trusted,
        key,
        progress: Some(&report_progress),
    };
    let report = vellum_store::verify(data, &opts)
        .with_context(|| format!("verifying {}", data.display()))?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let root = report.root.map(|r| b64(&r.0)).unwrap_or_default();
    if args.json {
        let out = json!({
            "ok": report.ok(),
            "tree_size": report.tree_size,
            "root": root,
            "events_checked": report.events_checked,
            "bytes_checked": report.bytes_checked,
            "checkpoints_checked": report.checkpoints_checked,
            "trusted_checked": report.trusted_checked,
            "pruned_before": report.pruned_before,
            "problems": report.problems.iter().map(|p| json!({
                "index": p.index, "file": p.file.as_ref().map(|f| f.display().to_string()), "what": p.what,
            })).collect::<Vec<_>>(),
            "notes": report.notes,
        });
        outln!("{out}");
    } else {
        for n in &report.notes {
            errln!("note: {n}");
        }
        if report.ok() {
            outln!(
                "ok: {} events ({} bytes) recomputed, {} checkpoints and {} trusted checkpoints verified; tree size {}, root {}{}",
                report.events_checked,
                report.bytes_checked,
                report.checkpoints_checked,
                report.trusted_checked,
                report.tree_size,
                root,
                if report.pruned_before > 0 {
                    format!(
                        "; indexes below {} pruned by retention",
                        report.pruned_before
                    )
                } else {
                    String::new()
                }
            );
        }
    }
    if let Some(first) = report.problems.first() {
        for p in report.problems.iter().skip(1) {
            errln!("also: {p}");
        }
        return Err(CheckFailed(format!("verification FAILED: {first}")).into());
    }
    Ok(())
}

/// A verifier key given inline or as a file holding it.
pub(crate) fn read_key(arg: &str) -> anyhow::Result<vellum_note::VerifierKey> {
    let text = if Path::new(arg).is_file() {
        std::fs::read_to_string(arg).with_context(|| format!("reading {arg}"))?
    } else if arg.contains('/') && !arg.contains('+') {
        // Looks like a path, and a key always has `+`: say what is missing.
        anyhow::bail!(
            "no such file {arg} (a key is given inline, `name+id+key`, or as a file holding one)"
        );
    } else {
        arg.to_string()
    };
    text.trim()
        .parse()
        .map_err(|e| anyhow::anyhow!("invalid verifier key: {e}"))
}

pub(crate) fn checkpoint(data: &Path) -> anyhow::Result<()> {
    let reader = open_reader(data)?;
    let (_, note) = reader.latest_checkpoint()?;
    out!("{note}");
    Ok(())
}

pub(crate) fn key(data: &Path) -> anyhow::Result<()> {
    outln!("{}", open_reader(data)?.verifier_key());
    Ok(())
}

pub(crate) fn prove_inclusion(data: &Path, index: u64, size: Option<u64>) -> anyhow::Result<()> {
    let reader = open_reader(data)?;
    let size = match size {
        Some(s) => s,
        None => reader.latest_checkpoint()?.0.size.0,
    };
    let p = reader.inclusion_proof(index, size)?;
    let out = json!({
        "index": p.index,
        "tree_size": p.tree_size,
        "leaf_hash": b64(&p.leaf_hash.0),
        "proof": b64_hashes(&p.proof),
    });
    outln!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

pub(crate) fn prove_consistency(data: &Path, from: u64, to: Option<u64>) -> anyhow::Result<()> {
    let reader = open_reader(data)?;
    let to = match to {
        Some(s) => s,
        None => reader.latest_checkpoint()?.0.size.0,
    };
    let proof = reader.consistency_proof(from, to)?;
    let out = json!({"size1": from, "size2": to, "proof": b64_hashes(&proof)});
    outln!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

pub(crate) fn parse_filter(f: &FilterArgs) -> anyhow::Result<Filter> {
    Ok(FilterText {
        category: f.category.as_deref(),
        action: f.action.as_deref(),
        outcome: f.outcome.as_deref(),
        user: f.user.as_deref(),
        ip: f.ip.as_deref(),
        since: f.since.as_deref(),
        until: f.until.as_deref(),
    }
    .parse()?)
}

/// Streams events in index order that match `filter`, up to `limit`.
fn scan(
    reader: &LogReader,
    filter: &Filter,
    limit: Option<usize>,
    mut emit: impl FnMut(u64, &[u8]) -> anyhow::Result<()>,
    show_progress: bool,
) -> anyhow::Result<()> {
    let end = reader.size()?;
    let start = reader.first_index()?;
    let bar = if show_progress {
        progress(end - start, "exporting (events)")
    } else {
        None
    };
    let mut count = 0usize;
    let limit = limit.unwrap_or(usize::MAX);
    // Reading stops at the limit, or at the size the log had when this began.
    let result = reader.scan(start, |index, bytes| {
        if count >= limit || index >= end {
            return Ok(ControlFlow::Break(()));
        }
        if let Some(b) = &bar
            && index % 4096 == 0
        {
            b.set_position(index - start);
        }
        let keep = filter.is_empty()
            || StoredEvent::parse(bytes)
                .map(|s| filter.matches(&s))
                .unwrap_or(false);
        if keep {
            count += 1;
            emit(index, bytes).map_err(|e| vellum_store::StoreError::Io {
                context: "writing output".into(),
                source: std::io::Error::other(e.to_string()),
            })?;
        }
        Ok(ControlFlow::Continue(()))
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    Ok(result?)
}

pub(crate) fn export(data: &Path, args: ExportArgs) -> anyhow::Result<()> {
    let filter = parse_filter(&args.filter)?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
    let leaf = args.format == "leaf";
    scan(
        &open_reader(data)?,
        &filter,
        args.filter.limit,
        |_, bytes| {
            if leaf {
                out.write_all(b64(bytes).as_bytes())?;
            } else {
                out.write_all(bytes)?;
            }
            out.write_all(b"\n")?;
            Ok(())
        },
        true,
    )?;
    out.flush()?;
    Ok(())
}

/// Events a query reads from the index per page (bounds its memory, not its answer).
const QUERY_PAGE: usize = 1000;

/// Matching events, oldest first. Through the query index when there is one (a server on
/// this directory builds it; it is opened read-only, beside the server if it is running,
/// and the events it does not cover yet are scanned), else by scanning the log.
pub(crate) fn query(data: &Path, args: QueryArgs) -> anyhow::Result<()> {
    let filter = parse_filter(&args.filter)?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut emit = |bytes: &[u8]| -> std::io::Result<()> {
        out.write_all(bytes)?;
        out.write_all(b"\n")
    };
    let reader = open_reader(data)?;
    match vellum_index::Index::open_read_only(reader.layout()) {
        Some(index) => {
            let mut left = args.filter.limit.unwrap_or(usize::MAX);
            let mut cursor = 0;
            while left > 0 {
                let page = index
                    .query(&reader, &filter, cursor, left.min(QUERY_PAGE), u64::MAX)
                    .context("querying the index")?;
                for event in &page.events {
                    emit(event)?;
                }
                left = left.saturating_sub(page.events.len());
                match page.next {
                    Some(next) => cursor = next,
                    None => break,
                }
            }
        }
        None => {
            if vellum_index::Index::exists(reader.layout()) {
                errln!(
                    "vellum: the query index cannot be opened read-only (it was not closed cleanly, is of another format, or a process that shares it with no one holds it): scanning the log"
                );
            }
            scan(
                &reader,
                &filter,
                args.filter.limit,
                |_, bytes| Ok(emit(bytes)?),
                false,
            )?
        }
    }
    out.flush()?;
    Ok(())
}

pub(crate) fn tail(data: &Path, args: TailArgs) -> anyhow::Result<()> {
    let reader = open_reader(data)?;
    let stdout = std::io::stdout();
    let mut next = reader
        .size()?
        .saturating_sub(args.lines)
        .max(reader.first_index()?);
    loop {
        let end = reader.size()?;
        if end > next {
            let mut out = stdout.lock();
            reader.for_each(next, end, |_, bytes| {
                out.write_all(bytes)
                    .and_then(|()| out.write_all(b"\n"))
                    .map_err(|e| vellum_store::StoreError::Io {
                        context: "writing output".into(),
                        source: e,
                    })
            })?;
            out.flush()?;
            next = end;
        }
        if !args.follow {
            return Ok(());
        }
        // Wait for more, but stop when nobody reads any more (`| head`, a closed terminal)
        // rather than when the next event happens to come, and when the log is gone.
        if stdout_closed(Duration::from_millis(200))? {
            return Ok(());
        }
        if !reader.layout().holds_log() {
            anyhow::bail!("the data directory {} is gone", data.display());
        }
    }
}

/// Waits up to `wait` for standard output to report an error or a hang-up (its reader
/// went away); whether it did.
fn stdout_closed(wait: Duration) -> anyhow::Result<bool> {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let stdout = std::io::stdout();
    let mut fds = [PollFd::new(&stdout, PollFlags::empty())];
    let timeout = Timespec {
        tv_sec: wait.as_secs() as i64,
        tv_nsec: i64::from(wait.subsec_nanos()),
    };
    match poll(&mut fds, Some(&timeout)) {
        Ok(_) => Ok(fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP)),
        Err(rustix::io::Errno::INTR) => Ok(false),
        Err(e) => Err(std::io::Error::from(e)).context("waiting on standard output"),
    }
}

pub(crate) fn keys_list(data: &Path) -> anyhow::Result<()> {
    // A directory that is not a log is an error, as for every other command; a log with
    // no keys is an empty list.
    open_reader(data)?;
    let keys = ApiKeys::new(data).list()?;
    if keys.is_empty() {
        errln!(
            "vellum: no API keys (create one with `vellum keys create --name NAME --role ROLE`)"
        );
        return Ok(());
    }
    outln!(
        "{:<12} {:<8} {:<28} {:<28} NAME",
        "ID",
        "ROLE",
        "CREATED",
        "REVOKED"
    );
    for k in keys {
        outln!(
            "{:<12} {:<8} {:<28} {:<28} {}",
            k.id,
            k.role,
            k.created,
            k.revoked.as_deref().unwrap_or("-"),
            k.name
        );
    }
    Ok(())
}
