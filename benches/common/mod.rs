//! The timing loop both benches use.

use std::time::{Duration, Instant};

/// Runs `f` at least 3 times and for at least `budget`, printing the mean
/// in `unit` (`"ms"` or `"µs"`).
pub fn bench(name: &str, budget: Duration, unit: &str, mut f: impl FnMut()) {
    let start = Instant::now();
    let mut n = 0u32;
    while n < 3 || start.elapsed() < budget {
        f();
        n += 1;
    }
    let mean = (start.elapsed() / n).as_secs_f64();
    let value = if unit == "ms" { mean * 1e3 } else { mean * 1e6 };
    println!("{name:<40} {value:>10.3} {unit}  ({n} runs)");
}
