//! Timing: per-operation cost of a synchronous closure, and percentiles of latency samples.

use std::time::{Duration, Instant};

/// How long to spend on each measurement.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Number of samples taken (the best is reported).
    pub samples: u32,
    /// Target wall time per sample.
    pub sample_time: Duration,
}

impl Budget {
    /// Full mode: 15 samples of ~40 ms (≈ 0.6 s per case).
    pub const FULL: Budget = Budget {
        samples: 15,
        sample_time: Duration::from_millis(40),
    };
    /// Quick mode: run the case a few times, only to prove it still works.
    pub const QUICK: Budget = Budget {
        samples: 1,
        sample_time: Duration::from_micros(1),
    };
}

/// Best-of-samples nanoseconds per call of `f` (the minimum: on a machine shared with other
/// builds, interference only ever adds time): each sample runs `f` in a batch sized (after a short
/// calibration) to last `sample_time`, so timer overhead is negligible.
pub fn per_op_ns(budget: Budget, mut f: impl FnMut()) -> f64 {
    // Calibrate: double the batch until one batch takes at least a tenth of a sample.
    let mut batch: u64 = 1;
    loop {
        let t = Instant::now();
        for _ in 0..batch {
            f();
        }
        let el = t.elapsed();
        if el >= budget.sample_time / 10 || batch >= 1 << 24 {
            let per = el.as_nanos() as f64 / batch as f64;
            batch = ((budget.sample_time.as_nanos() as f64 / per.max(1.0)) as u64).max(1);
            break;
        }
        batch *= 2;
    }
    let mut samples: Vec<f64> = (0..budget.samples)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..batch {
                f();
            }
            t.elapsed().as_nanos() as f64 / batch as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[0]
}

/// Latency percentiles of a set of samples.
#[derive(Debug, Clone, Copy)]
pub struct Percentiles {
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
}

/// p50 and p99 (nearest rank) of `samples`; zero for an empty set.
pub fn percentiles(samples: &mut [Duration]) -> Percentiles {
    if samples.is_empty() {
        return Percentiles {
            p50: Duration::ZERO,
            p99: Duration::ZERO,
        };
    }
    samples.sort();
    let rank = |q: f64| {
        samples[(((samples.len() as f64) * q).ceil() as usize).clamp(1, samples.len()) - 1]
    };
    Percentiles {
        p50: rank(0.50),
        p99: rank(0.99),
    }
}
