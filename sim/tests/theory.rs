//! The simulation against closed forms.

use cairn_sim::scenario::{Churn, Dishonest, Failures, Proofs};
use cairn_sim::theory::{detection_per_period, loss_without_repair};
use cairn_sim::{simulate, Scenario, HOURS_PER_YEAR};

fn quiet_network() -> Scenario {
    Scenario {
        failures: Failures {
            afr: 0.0,
            domain_outages_per_year: 0.0,
            region_outages_per_year: 0.0,
            ..Failures::default()
        },
        churn: Churn {
            leave_per_year: 0.0,
            ..Churn::default()
        },
        ..Scenario::default()
    }
}

/// Without repair, an RS(k, n) segment on n distinct nodes that each fail
/// within the year with probability AFR is lost with the binomial tail
/// probability. Five runs of 20 000 segments over 50 000 nodes (so that
/// segments barely share nodes and the number of failed nodes is close to
/// its mean): the loss rate is within 5 % of the formula.
#[test]
fn loss_without_repair_matches_the_binomial_tail() {
    let (k, m, afr) = (4u16, 4u16, 0.4);
    let expected = loss_without_repair(k as usize, (k + m) as usize, afr, 1.0);
    let mut lost = 0u64;
    let mut stored = 0u64;
    for seed in 0..5 {
        let s = Scenario {
            seed,
            nodes: 50_000,
            domains: 100,
            segments: 20_000,
            data_shards: k,
            parity_shards: m,
            repair: false,
            years: 1.0,
            period_hours: 24.0 * 30.0,
            failures: Failures {
                afr,
                ..quiet_network().failures
            },
            ..quiet_network()
        };
        let r = simulate(&s).unwrap();
        assert!(r.events.disk_failures > 0);
        lost += r.durability.segments_lost;
        stored += r.setup.segments;
    }
    // The run covers whole periods: 12 of 30 days, a little under a year.
    let years = 12.0 * 30.0 * 24.0 / HOURS_PER_YEAR;
    let expected_in_run = loss_without_repair(k as usize, (k + m) as usize, afr, years);
    let got = lost as f64 / stored as f64;
    assert!(
        (got / expected_in_run - 1.0).abs() < 0.05,
        "simulated {got:.4}, binomial {expected_in_run:.4} ({expected:.4} for a full year)"
    );
}

fn droppers(seed: u64, fraction: f64, periods: u32) -> cairn_sim::Report {
    let s = Scenario {
        seed,
        nodes: 2000,
        segments: 10_000,
        years: periods as f64 / HOURS_PER_YEAR,
        dishonest: Dishonest {
            droppers: 1.0,
            drop_fraction: fraction,
            ..Dishonest::default()
        },
        // Failed periods never add up to a disqualification here.
        proofs: Proofs {
            faulty_after: Some(1000),
            disqualify_after: Some(1000),
            ..Proofs::default()
        },
        ..quiet_network()
    };
    simulate(&s).expect("scenario runs")
}

/// A node that dropped a fraction f of its bytes fails a period of s
/// samples with probability 1 − (1 − f)^s: over 2000 such nodes the share
/// caught in the first period is within 3.5 standard deviations of it.
#[test]
fn detection_per_period_matches_the_formula() {
    for fraction in [0.01, 0.05, 0.2] {
        let r = droppers(3, fraction, 1);
        let d = &r.detection[0];
        assert_eq!(d.kind, cairn_sim::world::Kind::Dropper);
        let p = detection_per_period(fraction, r.setup.samples);
        let got = d.detected as f64 / d.cases as f64;
        let sd = (p * (1.0 - p) / d.cases as f64).sqrt();
        assert!(d.cases > 1900, "{d:?}");
        assert!(
            (got - p).abs() < 3.5 * sd,
            "f = {fraction}: caught {got:.4}, formula {p:.4} (sd {sd:.4})"
        );
    }
}

/// Until caught, every period is a fresh trial: the mean time to detection
/// is one period over the per-period probability (a geometric law).
#[test]
fn mean_detection_latency_is_geometric() {
    let fraction = 0.02;
    let r = droppers(4, fraction, 24 * 7);
    let d = &r.detection[0];
    let p = detection_per_period(fraction, r.setup.samples);
    // Truncated at a week: E[T | T ≤ w] for a geometric T.
    let w = 24.0 * 7.0;
    let q = 1.0 - p;
    let expected = 1.0 / p - w * q.powf(w) / (1.0 - q.powf(w));
    assert!(d.detected as f64 > 0.99 * d.cases as f64, "{d:?}");
    assert!(
        (d.mean_hours / expected - 1.0).abs() < 0.05,
        "mean {:.2} h, geometric {expected:.2} h",
        d.mean_hours
    );
}
