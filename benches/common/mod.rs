//! What the benchmarks share: their options (`BENCH_RUNS`, `--emit-json`/`BENCH_JSON`), the
//! machine facts printed beside their figures, and the median.

use std::path::PathBuf;

use anyhow::Context as _;

/// What the command line and the environment ask for.
pub struct Options {
    /// Runs per measurement (`BENCH_RUNS`, default 5).
    pub runs: usize,
    /// Where to write the figures as JSON (`--emit-json FILE` or `BENCH_JSON=FILE`).
    pub json: Option<PathBuf>,
}

impl Options {
    /// Reads `BENCH_RUNS`, `BENCH_JSON` and `--emit-json`.
    pub fn parse() -> anyhow::Result<Self> {
        let runs = match std::env::var("BENCH_RUNS") {
            Ok(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .with_context(|| format!("BENCH_RUNS=`{v}` is not a positive number of runs"))?,
            Err(_) => 5,
        };
        let mut json = std::env::var_os("BENCH_JSON").filter(|v| !v.is_empty()).map(PathBuf::from);
        // cargo passes `--bench` (and filters) to every bench binary; only our own flag is read.
        let mut args = std::env::args_os().skip(1);
        while let Some(arg) = args.next() {
            if arg == "--emit-json" {
                json = Some(args.next().map(PathBuf::from).context("--emit-json needs a file")?);
            } else if let Some(path) = arg.to_str().and_then(|a| a.strip_prefix("--emit-json=")) {
                json = Some(PathBuf::from(path));
            }
        }
        Ok(Self { runs, json })
    }
}

/// The number of CPUs and the CPU model: what makes figures from two machines comparable.
pub fn cpu() -> (usize, String) {
    let nproc = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|rest| rest.split_once(':')).map(|(_, m)| m.trim()))
        .unwrap_or("unknown")
        .to_owned();
    (nproc, model)
}

/// The median (mean of the middle two for an even count); sorts `values`.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 }
}

/// `PASS` or `MISS` against a target.
pub fn mark(pass: bool) -> &'static str {
    if pass { "PASS" } else { "MISS" }
}
