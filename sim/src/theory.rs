//! Closed forms the simulation is checked against.

/// Probability that fewer than `k` of `n` shards survive when each survives
/// independently with probability `survive`: the binomial tail
/// `Σ_{i<k} C(n,i) s^i (1−s)^(n−i)`.
pub fn fewer_than_k_survive(k: usize, n: usize, survive: f64) -> f64 {
    let mut total = 0.0;
    let mut choose = 1.0f64; // C(n, i)
    for i in 0..k.min(n + 1) {
        total += choose * survive.powi(i as i32) * (1.0 - survive).powi((n - i) as i32);
        choose = choose * (n - i) as f64 / (i + 1) as f64;
    }
    total.min(1.0)
}

/// Probability that a node fails within `years` at annual failure rate `afr`.
pub fn failed_within(afr: f64, years: f64) -> f64 {
    1.0 - (1.0 - afr).powf(years)
}

/// Probability that a segment RS(k, n) is lost within `years` without
/// repair, its shards on distinct nodes failing independently.
pub fn loss_without_repair(k: usize, n: usize, afr: f64, years: f64) -> f64 {
    fewer_than_k_survive(k, n, 1.0 - failed_within(afr, years))
}

/// Probability that `samples` uniform samples hit at least one lost byte
/// when a fraction `lost` is lost.
pub fn detection_per_period(lost: f64, samples: u32) -> f64 {
    1.0 - (1.0 - lost).powi(samples as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // Three of three needed, each survives with 1/2: 1 − 1/8 lost.
        assert!((fewer_than_k_survive(3, 3, 0.5) - 0.875).abs() < 1e-12);
        // One of two needed: lost only if both fail.
        assert!((fewer_than_k_survive(1, 2, 0.9) - 0.01).abs() < 1e-12);
        assert!((failed_within(0.1, 2.0) - 0.19).abs() < 1e-12);
        assert!((detection_per_period(0.01, 16) - 0.1485).abs() < 1e-4);
        assert_eq!(detection_per_period(0.0, 16), 0.0);
    }
}
