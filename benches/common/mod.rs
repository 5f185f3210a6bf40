//! A plain timing harness shared by the bench binaries (`harness = false`), kept instead of
//! criterion so that CI builds stay light: calibrate a batch size, take many samples, report
//! the median time per operation with the spread.
//!
//! Two modes, like libtest's: `cargo bench` passes `--bench`, and then every bench is timed;
//! `cargo test --all-targets` runs the same binary without it, and then every bench body runs
//! once and its checks (the output is what the standard seed must give) are the test. No
//! timing is ever asserted.
//!
//! Knobs: positional arguments filter benches by substring; `BENCH_TIME_MS` is the sampling
//! budget per bench (default 2000); `BENCH_SAMPLES` the maximum number of samples (default 101).

#![allow(dead_code)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The standard seed (`benches/fixtures/standard-seed/`): the e2e anchor's user-data and
/// meta-data, the realistic cloud-config every comparison uses.
pub fn standard_seed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/fixtures/standard-seed")
}

/// `(name, bytes)` of the standard seed's files, in the order a seed tool writes them.
pub fn standard_seed_files() -> Vec<(String, Vec<u8>)> {
    let dir = standard_seed_dir();
    ["user-data", "meta-data"]
        .iter()
        .map(|n| {
            let p = dir.join(n);
            let data = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (n.to_string(), data)
        })
        .collect()
}

/// Command-line and environment settings of one bench binary run.
pub struct Harness {
    timed: bool,
    filters: Vec<String>,
    budget: Duration,
    max_samples: usize,
    ran: usize,
}

/// What one timed bench measured (per operation).
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub median_ns: f64,
    pub min_ns: f64,
    pub max_ns: f64,
    pub samples: usize,
    pub iters_per_sample: u64,
}

impl Harness {
    pub fn from_args() -> Harness {
        let mut timed = false;
        let mut filters = Vec::new();
        for a in std::env::args().skip(1) {
            match a.as_str() {
                "--bench" => timed = true,
                // libtest flags cargo may pass; nothing to do for them here
                s if s.starts_with("--") => {}
                s => filters.push(s.to_string()),
            }
        }
        let env_num = |k: &str, d: u64| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(d)
        };
        Harness {
            timed,
            filters,
            budget: Duration::from_millis(env_num("BENCH_TIME_MS", 2000)),
            max_samples: env_num("BENCH_SAMPLES", 101).max(5) as usize,
            ran: 0,
        }
    }

    pub fn timed(&self) -> bool {
        self.timed
    }

    fn selected(&self, name: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| name.contains(f.as_str()))
    }

    /// Run `check` once on the first result of `f` (always), then, under `cargo bench`, time
    /// `f`. Prints one line.
    pub fn bench<T>(
        &mut self,
        name: &str,
        mut f: impl FnMut() -> T,
        check: impl FnOnce(&T),
    ) -> Option<Stats> {
        if !self.selected(name) {
            return None;
        }
        self.ran += 1;
        let first = f();
        check(&first);
        drop(first);
        if !self.timed {
            println!("{name:<44} ok (checked; run `cargo bench` to time it)");
            return None;
        }
        let stats = measure(&mut f, self.budget, self.max_samples);
        println!(
            "{name:<44} {:>12}/op  (min {}, max {}; {} samples x {} iters)",
            fmt_ns(stats.median_ns),
            fmt_ns(stats.min_ns),
            fmt_ns(stats.max_ns),
            stats.samples,
            stats.iters_per_sample
        );
        Some(stats)
    }

    /// Fail when a filter matched nothing (a typo would otherwise "pass" silently).
    pub fn finish(self) {
        if self.ran == 0 {
            eprintln!("no bench matched {:?}", self.filters);
            std::process::exit(1);
        }
    }
}

/// Batch size so that one sample takes at least ~1 ms (timer resolution and loop overhead
/// vanish), then samples until the budget or the sample cap is reached (at least 5).
fn measure<T>(f: &mut impl FnMut() -> T, budget: Duration, max_samples: usize) -> Stats {
    let target = Duration::from_millis(1);
    let mut iters: u64 = 1;
    loop {
        let t = time_batch(f, iters);
        if t >= target || iters >= 1 << 24 {
            break;
        }
        let scale = if t.as_nanos() == 0 {
            16
        } else {
            (target.as_nanos() / t.as_nanos()).clamp(2, 16) as u64
        };
        iters = iters.saturating_mul(scale);
    }
    let start = Instant::now();
    let mut per_op = Vec::with_capacity(max_samples);
    while per_op.len() < max_samples && (per_op.len() < 5 || start.elapsed() < budget) {
        let t = time_batch(f, iters);
        per_op.push(t.as_nanos() as f64 / iters as f64);
    }
    per_op.sort_by(f64::total_cmp);
    let n = per_op.len();
    let median = if n % 2 == 1 {
        per_op[n / 2]
    } else {
        (per_op[n / 2 - 1] + per_op[n / 2]) / 2.0
    };
    Stats {
        median_ns: median,
        min_ns: per_op[0],
        max_ns: per_op[n - 1],
        samples: n,
        iters_per_sample: iters,
    }
}

fn time_batch<T>(f: &mut impl FnMut() -> T, iters: u64) -> Duration {
    let t0 = Instant::now();
    for _ in 0..iters {
        black_box(f());
    }
    t0.elapsed()
}

/// `812 ns`, `12.345 µs`, `3.210 ms`.
pub fn fmt_ns(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.0} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.3} µs", ns / 1e3)
    } else {
        format!("{:.3} ms", ns / 1e6)
    }
}

/// `cloud-localds -f FS DIR/seed.FS` of the standard seed; `None` when cloud-localds is not
/// installed (the caller falls back to our own writers).
pub fn cloud_localds(dir: &Path, fs: &str) -> Option<PathBuf> {
    let out = dir.join(format!("seed.{fs}"));
    let seed = standard_seed_dir();
    tool(
        "cloud-localds",
        &[
            std::ffi::OsStr::new("-f"),
            std::ffi::OsStr::new(fs),
            out.as_os_str(),
            seed.join("user-data").as_os_str(),
            seed.join("meta-data").as_os_str(),
        ],
    )?;
    Some(out)
}

/// Run an external tool; `None` when it is not installed (the caller falls back).
pub fn tool(cmd: &str, args: &[&std::ffi::OsStr]) -> Option<()> {
    match std::process::Command::new(cmd)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Some(()),
        Ok(s) => panic!("{cmd} failed: {s}"),
        Err(_) => None,
    }
}
