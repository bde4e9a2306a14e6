//! The report's arithmetic and formatting: percentiles, ratios, durations, and the header that
//! says which machine measured and how loaded it was (a ratio from a loaded machine is read
//! differently).

use std::time::Duration;

/// Print the machine (CPU model and count, kernel) and its load average, as the first lines of
/// a report.
pub fn header() {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    println!(
        "Machine: {model}, {cpus} CPUs, Linux {}; load average {} (1, 5, 15 min) at the start.\n",
        kernel.trim(),
        load.join(" ")
    );
}

/// The value at fraction `p` of `sorted` (index round((n-1)·p): 0.5 the median, 1.0 the
/// maximum); None when empty.
pub fn at<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    Some(sorted[((sorted.len() as f64 - 1.0) * p).round() as usize])
}

/// [`at`] for durations; zero when there are none.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    at(sorted, p).unwrap_or_default()
}

/// The nearest-rank percentile of unsorted samples (the smallest value with at least `p` of
/// them at or below it); zero when there are none.
pub fn nearest_rank(v: &[Duration], p: f64) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    if v.is_empty() {
        return Duration::ZERO;
    }
    v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
}

/// The median of the samples (the upper one of an even count).
pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    percentile(&v, 0.5)
}

/// `x / y` as `1.23x` with `decimals` decimals, or `—` when there is no reference (`y` not a
/// positive number).
pub fn ratio(x: f64, y: f64, decimals: usize) -> String {
    if y > 0.0 && y.is_finite() {
        format!("{:.*}x", decimals, x / y)
    } else {
        "—".to_string()
    }
}

/// A duration in milliseconds with `decimals` decimals.
pub fn ms(d: Duration, decimals: usize) -> String {
    format!("{:.*} ms", decimals, d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_ratios() {
        let v: Vec<Duration> = (1..=10).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 0.5), Duration::from_millis(6));
        assert_eq!(percentile(&v, 1.0), Duration::from_millis(10));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
        assert_eq!(nearest_rank(&v, 0.5), Duration::from_millis(5));
        assert_eq!(nearest_rank(&v, 0.99), Duration::from_millis(10));
        assert_eq!(
            median(vec![v[3], v[0], v[2], v[1]]),
            Duration::from_millis(3)
        );
        assert_eq!(ratio(3.0, 2.0, 2), "1.50x");
        assert_eq!(ratio(3.0, 0.0, 1), "—");
        assert_eq!(ms(Duration::from_micros(1500), 1), "1.5 ms");
    }
}
