//! otrd-bench: runs otrd's benchmark suite and writes the Markdown report (issue 7).
//!
//! `scripts/bench [--quick] [--out FILE]` (or `cargo run -p otrd-bench --release -- …`). Every
//! figure is a ratio against a reference measured in the same run; `--quick` runs each benchmark
//! once, briefly, so CI keeps them compiling and working (it never fails on a figure);
//! `--only crypto`, `--only ipc`, `--only e2e`, `--only scale`, `--only flood` or
//! `--only realtime` runs one section (a partial report, labelled as such).
//!
//! Modules: `timing` (samplers), `anchors` (Node WebCrypto, openssl speed), `cases` (crypto
//! fixtures shared with daemon/benches), `crypto`, `harness` (rcsim, otrd processes, clients),
//! `ipc`, `e2e`, `scale`, `realtime` (8.x relays), `flood` (a third user flooding path B, with
//! native peers from `native_peers`), `report`. OTRD_BENCH_LOG sets the daemons' RUST_LOG
//! (default warn).

mod anchors;
#[allow(dead_code)] // shared with daemon/benches/crypto.rs, which uses a different subset
mod cases;
mod crypto;
mod e2e;
mod flood;
mod harness;
mod ipc;
mod native_peers;
mod peers;
mod realtime;
mod report;
mod scale;
mod timing;

use anyhow::{Context, Result};
use clap::Parser;
use report::{Figure, NotMeasured};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use timing::Budget;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    about = "otrd's benchmark suite: measures every budgeted figure and writes a Markdown report"
)]
struct Args {
    /// Run every benchmark once, briefly (CI: proves they work; figures are meaningless).
    #[arg(long)]
    quick: bool,
    /// Where to write the report.
    #[arg(long, default_value = "bench-report.md")]
    out: PathBuf,
    /// Session counts for the scale section (default 1000,10000; quick 20,50).
    #[arg(long, value_delimiter = ',')]
    scale: Vec<usize>,
    /// Run only one section: `crypto` (in-process figures and their Node/OpenSSL references,
    /// seconds), `ipc` (GetStatus vs a raw echo, fan-out, idle RSS), `e2e` (end-to-end latency
    /// through rcsim and reconnection) or `scale` (many sessions).
    #[arg(long, value_enum)]
    only: Option<Section>,
    /// Same as `--only scale` (kept for existing scripts).
    #[arg(long, hide = true, conflicts_with = "only")]
    only_scale: bool,
    /// Internal: run as the scale section's peer process against this rcsim URL.
    #[arg(long, hide = true, requires = "peers")]
    peers_of: Option<String>,
    /// Internal: how many peers the peer process runs.
    #[arg(long, hide = true)]
    peers: Option<usize>,
    /// Internal: run as the flood case's native peers (otrd engines) against this rcsim URL.
    #[arg(long, hide = true, requires = "peers")]
    native_peers_of: Option<String>,
    /// Internal: the first peer's index for `--native-peers-of`.
    #[arg(long, hide = true, default_value_t = 0)]
    peers_from: usize,
}

/// A section that `--only` can pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Section {
    /// Section 1: crypto and the DDP decoder, in-process.
    Crypto,
    /// Section 2: the IPC figures alone (GetStatus vs raw echo, fan-out, idle RSS).
    Ipc,
    /// Section 3: end to end through rcsim alone (OTR vs plain latency, reconnection).
    E2e,
    /// Section 4: one daemon with many established sessions.
    Scale,
    /// Section 6: a third user flooding path B (issue 15's budget).
    Flood,
    /// Section 5: Rocket.Chat 8.x's relays under real use (issue 21's budget).
    Realtime,
}

/// Sections 2–3 (daemons against rcsim): IPC unless `only` is `E2e`, end to end unless it is
/// `Ipc`.
async fn load(quick: bool, only: Option<Section>, figures: &mut Vec<Figure>) -> Result<()> {
    let n = |full: usize, q: usize| if quick { q } else { full };
    let up = Duration::from_secs(30);
    let ipc = only != Some(Section::E2e);
    eprintln!("otrd-bench: {}…", if ipc { "IPC" } else { "setup" });
    let sim = harness::sim(1, false).await?;
    let url = sim.http_url();
    let me = harness::Daemon::start(&url, "me", false, up).await?;
    let bob = harness::Daemon::start(&url, &harness::user(0), true, up).await?;
    if ipc {
        tokio::time::sleep(Duration::from_millis(n(1000, 0) as u64)).await;
        figures.push(ipc::idle_rss(me.rss_kib()?));
        figures.push(ipc::unary(&me, n(3000, 10)).await?);
    }
    scale::establish(&me, &[harness::user(0)], up).await?;
    if ipc {
        let mut fan = Vec::new();
        for w in [1, 10, 100] {
            fan.push((w, ipc::fanout(&me, &harness::user(0), w, n(40, 1)).await?));
        }
        figures.extend(ipc::fanout_figures(&fan));
    }
    if only == Some(Section::Ipc) {
        drop((me, bob));
        sim.shutdown().await;
        return Ok(());
    }

    eprintln!("otrd-bench: end to end…");
    let otr = e2e::otr_latency(&me, &bob, &harness::user(0), n(300, 3)).await?;
    let plain = e2e::plain_latency(&url, "me", &harness::user(0), n(300, 3)).await?;
    figures.extend(e2e::latency_figures(otr, plain));
    figures.push(e2e::reconnect(&me, &sim).await?);
    drop((me, bob));
    sim.shutdown().await;
    Ok(())
}

/// Section 4: the scale runs.
async fn scale_section(
    quick: bool,
    scale_sizes: &[usize],
    figures: &mut Vec<Figure>,
    missing: &mut Vec<NotMeasured>,
) -> Result<()> {
    eprintln!("otrd-bench: scale…");
    let sizes: &[usize] = match (scale_sizes.is_empty(), quick) {
        (false, _) => scale_sizes,
        (true, true) => &[20, 50],
        (true, false) => &[1_000, 10_000],
    };
    figures.extend(scale::run(sizes).await?);
    if !sizes.iter().any(|&n| n >= 10_000) {
        missing.push(NotMeasured {
            name: "10,000 established sessions (locked bytes, RSS, GetStatus p99, time to lock)"
                .into(),
            reason: "this run did not include 10,000 sessions (`--scale` was given without it); \
                     `scripts/bench` runs 1,000 and 10,000 by default."
                .into(),
        });
    }

    Ok(())
}

/// Section 6: issue 15's budget under a path-B flood.
async fn flood_section(quick: bool, figures: &mut Vec<Figure>) -> Result<()> {
    eprintln!("otrd-bench: path-B flood…");
    figures.extend(flood::run(quick).await?);
    Ok(())
}

/// Section 5: issue 21's figures over the 8.x realtime relays.
async fn realtime_section(quick: bool, figures: &mut Vec<Figure>) -> Result<()> {
    eprintln!("otrd-bench: Rocket.Chat 8.x relays…");
    figures.extend(realtime::run(quick).await?);
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let (Some(url), Some(n)) = (&args.peers_of, args.peers) {
        return tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?
            .block_on(peers::serve(url, n));
    }
    if let (Some(url), Some(n)) = (&args.native_peers_of, args.peers) {
        return tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?
            .block_on(native_peers::serve(url, args.peers_from, n));
    }
    let budget = if args.quick {
        Budget::QUICK
    } else {
        Budget::FULL
    };
    let started = Instant::now();
    let load_at_start = load_average();
    let mut figures: Vec<Figure> = Vec::new();
    let mut missing: Vec<NotMeasured> = Vec::new();

    let only = if args.only_scale {
        Some(Section::Scale)
    } else {
        args.only
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    if matches!(only, None | Some(Section::Crypto)) {
        eprintln!("otrd-bench: references (node, openssl speed)…");
        let node = anchors::node(args.quick)?;
        let ossl = anchors::openssl()?;
        eprintln!("otrd-bench: crypto…");
        figures.extend(crypto::run(budget, &node, &ossl));
    }
    if matches!(only, Some(Section::Ipc | Section::E2e)) {
        rt.block_on(load(args.quick, only, &mut figures))?;
    }
    if only.is_none() {
        rt.block_on(load(args.quick, None, &mut figures))?;
    }
    if matches!(only, None | Some(Section::Realtime)) {
        rt.block_on(realtime_section(args.quick, &mut figures))?;
    }
    if matches!(only, None | Some(Section::Flood)) {
        rt.block_on(flood_section(args.quick, &mut figures))?;
    }
    if matches!(only, None | Some(Section::Scale)) {
        rt.block_on(scale_section(
            args.quick,
            &args.scale,
            &mut figures,
            &mut missing,
        ))?;
    }

    let header = format!(
        "# otrd benchmark report\n\nMode: {}{}. Machine: {} CPUs, {}. Run took {:.0} s. Load average \
         (1/5/15 min) at the start: {}; at the end: {}.\n\n\
         Each figure is measured in the same run as its reference. The machine is shared with other \
         builds, so absolute numbers are noisy; ratios are steadier. Regenerate with `scripts/bench`.",
        if args.quick { "quick (figures meaningless; CI smoke run)" } else { "full" },
        match only {
            None => "",
            Some(Section::Crypto) => ", crypto section only (`--only crypto`)",
            Some(Section::Ipc) => ", IPC section only (`--only ipc`)",
            Some(Section::E2e) => ", end-to-end section only (`--only e2e`)",
            Some(Section::Scale) => ", scale section only (`--only scale`)",
            Some(Section::Flood) => ", path-B flood section only (`--only flood`)",
            Some(Section::Realtime) => ", Rocket.Chat 8.x relays only (`--only realtime`)",
        },
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        std::env::consts::ARCH,
        started.elapsed().as_secs_f64(),
        load_at_start,
        load_average(),
    );
    missing.sort_by(|a, b| a.name.cmp(&b.name));
    let text = report::render(&header, &figures, &missing);
    std::fs::write(&args.out, &text).with_context(|| format!("writing {}", args.out.display()))?;
    print!("{text}");
    Ok(())
}

/// The first three fields of /proc/loadavg (what `uptime` shows): how busy the shared machine was.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}
