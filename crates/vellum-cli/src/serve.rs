//! `vellum serve`: configuration from file, environment and flags, then the server.

use std::path::Path;

use anyhow::Context;
use vellum_server::{Config, Overrides};

use crate::args::{ServeArgs, StoreArgs};

pub(crate) fn serve(data: &Path, store: &StoreArgs, args: ServeArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VELLUM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let flags = Overrides {
        listen: args.listen,
        origin: store.origin.clone(),
        segment_max_mib: store.segment_mib,
        max_event_bytes: store.max_event_bytes,
        dedupe_window: store.dedupe_window,
    };
    let config = Config::load(args.config.as_deref(), &flags)?;
    let (state, token) = vellum_server::prepare(data, config)
        .with_context(|| format!("opening {}", data.display()))?;
    if let Some(token) = token {
        outln!("vellum: no API keys yet; created an admin key, shown only now:");
        outln!("{token}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("vellum-http")
        .build()
        .context("starting the runtime")?;
    runtime.block_on(vellum_server::run(state, vellum_server::shutdown_signal()))?;
    Ok(())
}
