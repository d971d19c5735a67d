//! otrd-bench: runs otrd's benchmark suite and writes the Markdown report (issue 7).
//!
//! `scripts/bench [--quick] [--out FILE]` (or `cargo run -p otrd-bench --release -- …`). Every
//! figure is a ratio against a reference measured in the same run; `--quick` runs each benchmark
//! once, briefly, so CI keeps them compiling and working (it never fails on a figure).
//!
//! Modules: `timing` (samplers), `anchors` (Node WebCrypto, openssl speed), `cases` (crypto
//! fixtures shared with daemon/benches), `crypto`, `report`.

mod anchors;
#[allow(dead_code)] // shared with daemon/benches/crypto.rs, which uses a different subset
mod cases;
mod crypto;
mod report;
mod timing;

use anyhow::{Context, Result};
use clap::Parser;
use report::{Figure, NotMeasured};
use std::path::PathBuf;
use std::time::Instant;
use timing::Budget;

/// Command line.
#[derive(Debug, Parser)]
#[command(about = "otrd's benchmark suite: measures every budgeted figure and writes a Markdown report")]
struct Args {
    /// Run every benchmark once, briefly (CI: proves they work; figures are meaningless).
    #[arg(long)]
    quick: bool,
    /// Where to write the report.
    #[arg(long, default_value = "bench-report.md")]
    out: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let budget = if args.quick { Budget::QUICK } else { Budget::FULL };
    let started = Instant::now();
    let mut figures: Vec<Figure> = Vec::new();
    let mut missing: Vec<NotMeasured> = Vec::new();

    eprintln!("otrd-bench: references (node, openssl speed)…");
    let node = anchors::node(args.quick)?;
    let ossl = anchors::openssl()?;
    eprintln!("otrd-bench: crypto…");
    figures.extend(crypto::run(budget, &node, &ossl));

    let header = format!(
        "# otrd benchmark report\n\nMode: {}. Machine: {} CPUs, {}. Run took {:.0} s.\n\n\
         Each figure is measured in the same run as its reference. The machine is shared with other \
         builds, so absolute numbers are noisy; ratios are steadier. Regenerate with `scripts/bench`.",
        if args.quick { "quick (figures meaningless; CI smoke run)" } else { "full" },
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        std::env::consts::ARCH,
        started.elapsed().as_secs_f64(),
    );
    missing.sort_by(|a, b| a.name.cmp(&b.name));
    let text = report::render(&header, &figures, &missing);
    std::fs::write(&args.out, &text).with_context(|| format!("writing {}", args.out.display()))?;
    print!("{text}");
    Ok(())
}
