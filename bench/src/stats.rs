//! Latency samples and the summary line every run prints.

use std::time::Duration;

#[derive(Default)]
pub struct Samples {
    micros: Vec<u64>,
    pub errors: u64,
}

impl Samples {
    pub fn record(&mut self, d: Duration) {
        self.micros.push(d.as_micros() as u64);
    }

    pub fn merge(&mut self, other: Samples) {
        self.micros.extend(other.micros);
        self.errors += other.errors;
    }

    pub fn ops(&self) -> usize {
        self.micros.len()
    }

    /// The `q` quantile (0..=1) in microseconds, nearest rank.
    pub fn quantile(&mut self, q: f64) -> u64 {
        if self.micros.is_empty() {
            return 0;
        }
        self.micros.sort_unstable();
        let rank = ((q * self.micros.len() as f64).ceil() as usize).clamp(1, self.micros.len());
        self.micros[rank - 1]
    }
}

pub struct Summary {
    pub ops: usize,
    pub errors: u64,
    pub throughput: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
}

impl Summary {
    pub fn of(mut samples: Samples, elapsed: Duration) -> Self {
        Summary {
            ops: samples.ops(),
            errors: samples.errors,
            throughput: samples.ops() as f64 / elapsed.as_secs_f64().max(1e-9),
            p50_us: samples.quantile(0.50),
            p99_us: samples.quantile(0.99),
            p999_us: samples.quantile(0.999),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let mut s = Samples::default();
        for us in 1..=1000u64 {
            s.record(Duration::from_micros(us));
        }
        assert_eq!(s.quantile(0.5), 500);
        assert_eq!(s.quantile(0.99), 990);
        assert_eq!(s.quantile(0.999), 999);
        let sum = Summary::of(s, Duration::from_secs(2));
        assert_eq!(sum.ops, 1000);
        assert!((sum.throughput - 500.0).abs() < 1e-6);
    }
}
