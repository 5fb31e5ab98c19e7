//! The executor's figures for `/metrics`: job durations and pickup latency (queued → run
//! started) as Prometheus histograms. Kept in memory since the server started, as
//! Prometheus expects of a histogram (it computes rates from the counters).

use std::fmt::Write;
use std::sync::Mutex;

/// Upper bounds (seconds) of the job duration buckets.
const JOB_BUCKETS: &[f64] = &[1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0];
/// Upper bounds (seconds) of the pickup latency buckets.
const PICKUP_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 300.0];

#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, v: f64) {
        for (i, b) in self.bounds.iter().enumerate() {
            if v <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (b, n) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {n}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

#[derive(Debug)]
pub struct ExecMetrics {
    job_duration: Mutex<Histogram>,
    pickup: Mutex<Histogram>,
}

impl Default for ExecMetrics {
    fn default() -> Self {
        ExecMetrics {
            job_duration: Mutex::new(Histogram::new(JOB_BUCKETS)),
            pickup: Mutex::new(Histogram::new(PICKUP_BUCKETS)),
        }
    }
}

impl ExecMetrics {
    pub fn job_finished(&self, seconds: f64) {
        lock(&self.job_duration).observe(seconds);
    }

    pub fn run_picked_up(&self, seconds: f64) {
        lock(&self.pickup).observe(seconds);
    }

    pub fn render(&self, out: &mut String) {
        lock(&self.job_duration).render(
            out,
            "gantry_job_duration_seconds",
            "Duration of jobs run by this server.",
        );
        lock(&self.pickup).render(
            out,
            "gantry_pickup_latency_seconds",
            "Time from a run being queued to the executor starting it.",
        );
    }
}

fn lock(m: &Mutex<Histogram>) -> std::sync::MutexGuard<'_, Histogram> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_prometheus_text() {
        let m = ExecMetrics::default();
        m.job_finished(3.0);
        m.job_finished(120.0);
        m.run_picked_up(0.07);
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("gantry_job_duration_seconds_bucket{le=\"1\"} 0\n"));
        assert!(out.contains("gantry_job_duration_seconds_bucket{le=\"5\"} 1\n"));
        assert!(out.contains("gantry_job_duration_seconds_bucket{le=\"300\"} 2\n"));
        assert!(out.contains("gantry_job_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(out.contains("gantry_job_duration_seconds_sum 123\n"));
        assert!(out.contains("gantry_pickup_latency_seconds_bucket{le=\"0.05\"} 0\n"));
        assert!(out.contains("gantry_pickup_latency_seconds_bucket{le=\"0.1\"} 1\n"));
        assert!(out.contains("# TYPE gantry_pickup_latency_seconds histogram\n"));
    }
}
