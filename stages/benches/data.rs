//! Data-stage benchmarks (`cargo bench -p repro-stages --bench data`) at the LALR paper's
//! subsample size × D-GEX gene count: 20,000 × 10,463 f32 (837 MB).
//! - quantile_normalize over all 10,463 columns of every row;
//! - the dataset artifact's write and read (safetensors, see src/dataset.rs), its joined read
//!   (dedupe) and the streamed write of a subset of rows (split).
//!
//! The full-size GEO run (111,009 × 10,463) is measured with `repro run` and /usr/bin/time:
//! see the README's "Measured" section.

use repro_stages::dataset::Dataset;
use repro_stages::quantile_normalize::{quantile_normalize_rows, Ties};
use repro_stages::rng::{rng, Rng};
use std::time::Instant;

fn main() {
    let (n, l, t) = (20_000, 943, 9_520);
    let mut r = rng(1, "bench");
    let x: Vec<f32> = (0..n * l).map(|_| r.random::<f32>() * 11.0 + 4.0).collect();
    let y: Vec<f32> = (0..n * t).map(|_| r.random::<f32>() * 11.0 + 4.0).collect();
    let mut joined: Vec<f32> = Vec::with_capacity(n * (l + t));
    for i in 0..n {
        joined.extend_from_slice(&x[i * l..(i + 1) * l]);
        joined.extend_from_slice(&y[i * t..(i + 1) * t]);
    }
    let t0 = Instant::now();
    quantile_normalize_rows(&mut joined, l + t, Ties::Mean);
    println!("quantile_normalize 20,000 × 10,463 (2 threads): {:6.2} s", t0.elapsed().as_secs_f64());
    let d = Dataset {
        features: (0..l).map(|i| format!("LM{i}")).collect(),
        x,
        targets: (0..t).map(|i| format!("TG{i}")).collect(),
        y,
        classes: vec![],
        labels: None,
        ids: (0..n as i64).collect(),
    };
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let path = dir.path().join("d");
    let t0 = Instant::now();
    d.write(&path).unwrap();
    let w = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let back = Dataset::read(&path).unwrap();
    let rd = t0.elapsed().as_secs_f64();
    assert_eq!(back.x.len(), d.x.len());
    println!(
        "dataset artifact 20,000 × 10,463: write {w:6.2} s, read {rd:6.2} s ({:.0} MB)",
        std::fs::metadata(&path).unwrap().len() as f64 / 1e6
    );
    // What dedupe and split do instead (#19 memory): read as one joined matrix; stream 80 % of
    // the rows to a part without building it.
    let t0 = Instant::now();
    let (_, m) = Dataset::read_joined(&path).unwrap();
    let rj = t0.elapsed().as_secs_f64();
    assert_eq!(m.len(), n * (l + t));
    let part: Vec<usize> = (0..n).filter(|i| i % 5 != 0).collect();
    let t0 = Instant::now();
    back.write_rows(&part, &dir.path().join("part")).unwrap();
    println!(
        "read_joined {rj:6.2} s; write_rows of 16,000 rows {:6.2} s (select_rows + write held a second copy)",
        t0.elapsed().as_secs_f64()
    );
}
