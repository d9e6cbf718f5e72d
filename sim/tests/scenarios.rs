//! Whole runs: determinism, each failure model and cheat doing what it must.

use cairn_sim::scenario::{Churn, Dishonest, Failures, Growth, OutageKind, Proofs, ScriptedOutage};
use cairn_sim::world::Kind;
use cairn_sim::{simulate, Report, Scenario};

fn detection(r: &Report, kind: Kind) -> &cairn_sim::report::Detection {
    r.detection
        .iter()
        .find(|d| d.kind == kind)
        .expect("every kind is reported")
}

fn busy(seed: u64) -> Scenario {
    Scenario {
        seed,
        nodes: 300,
        segments: 1500,
        data_shards: 4,
        parity_shards: 4,
        years: 0.1,
        failures: Failures {
            afr: 0.3,
            domain_outages_per_year: 40.0,
            region_outages_per_year: 10.0,
            outage_hours: 30.0,
            outage_permanent: 0.2,
        },
        churn: Churn {
            leave_per_year: 1.0,
            graceful: 0.5,
        },
        growth: Growth {
            nodes_per_year: 1.0,
            segments_per_year: 1.0,
        },
        dishonest: Dishonest {
            droppers: 0.05,
            late: 0.05,
            declarers: 0.05,
            ..Dishonest::default()
        },
        ..Scenario::default()
    }
}

#[test]
fn same_seed_same_result_and_another_seed_another() {
    let a = simulate(&busy(7)).unwrap();
    let b = simulate(&busy(7)).unwrap();
    let json = |r: &Report| serde_json::to_string(r).unwrap();
    assert_eq!(json(&a), json(&b));
    // Everything the scenario asks for happened, so the comparison covers it.
    let e = &a.events;
    assert!(
        e.disk_failures > 0 && e.graceful_leaves > 0 && e.vanished > 0,
        "{e:?}"
    );
    assert!(
        e.domain_outages > 0 && e.nodes_joined > 0 && e.files_uploaded > 0,
        "{e:?}"
    );
    assert!(a.repair.repairs > 0 && a.economics.slashed > 0);
    assert_ne!(json(&a), json(&simulate(&busy(8)).unwrap()));
}

#[test]
fn every_kind_of_cheat_is_caught_and_cheating_pays_less() {
    let s = Scenario {
        nodes: 400,
        segments: 4000,
        years: 0.03,
        dishonest: Dishonest {
            droppers: 0.1,
            drop_fraction: 0.05,
            late: 0.1,
            late_probability: 0.5,
            declarers: 0.1,
            declare_fraction: 0.1,
            ..Dishonest::default()
        },
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
    };
    let r = simulate(&s).unwrap();
    for kind in [Kind::Dropper, Kind::Late, Kind::Declarer] {
        let d = detection(&r, kind);
        assert_eq!(d.cases, 40, "{d:?}");
        assert_eq!(d.detected, d.cases, "{d:?}");
    }
    // A declared loss is known at the first period; a dropper of 5 % is
    // caught with probability 0.56 a period, so on average within 2 hours.
    assert!(detection(&r, Kind::Declarer).max_hours <= 1.0);
    let dropper = detection(&r, Kind::Dropper);
    assert!(
        dropper.mean_hours > 1.0 && dropper.mean_hours < 3.0,
        "{dropper:?}"
    );
    assert!(
        r.earnings.mean_dishonest < 0.95 * r.earnings.mean_honest,
        "{:?}",
        r.earnings
    );
    assert!(r.economics.withheld > 0);
    assert_eq!(r.durability.segments_lost, 0);
}

/// Colluders that rebuild challenged chunks from siblings pass every proof
/// while k siblings are reachable: the chain pays them in full and repairs
/// nothing, though the data is not there.
#[test]
fn regenerating_from_siblings_is_not_caught_while_siblings_answer() {
    let s = Scenario {
        nodes: 300,
        segments: 3000,
        years: 0.01,
        dishonest: Dishonest {
            regenerators: 0.2,
            regenerate_fraction: 0.5,
            ..Dishonest::default()
        },
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
    };
    let r = simulate(&s).unwrap();
    let d = detection(&r, Kind::Regenerator);
    assert_eq!(d.cases, 60, "{d:?}");
    assert_eq!(d.detected, 0, "{d:?}");
    assert!(r.repair.regeneration_bytes > 0);
    assert_eq!(r.repair.repairs, 0);
    assert_eq!(r.economics.withheld, 0);
    // Real redundancy is lower than the chain believes.
    assert!(r.durability.min_intact_seen < 27, "{:?}", r.durability);
}

fn regions_lost_for_good(repair: bool) -> Report {
    let events = (0..3)
        .map(|i| ScriptedOutage {
            at_hours: 24.0 + 150.0 * i as f64,
            kind: OutageKind::Region,
            index: i,
            hours: None,
        })
        .collect();
    let s = Scenario {
        nodes: 400,
        domains: 20,
        regions: 4,
        segments: 2000,
        data_shards: 4,
        parity_shards: 4,
        repair_threshold: Some(7),
        repair,
        years: 0.07,
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
        events,
        ..Scenario::default()
    };
    simulate(&s).expect("scenario runs")
}

#[test]
fn repair_cuts_the_losses_of_regions_lost_for_good() {
    let without = regions_lost_for_good(false);
    let with = regions_lost_for_good(true);
    assert_eq!(without.events.outages_for_good, 3);
    assert!(
        without.durability.segments_lost > 1500,
        "{:?}",
        without.durability
    );
    // Not zero: placement spreads a segment over domains, not regions, so a
    // region of 5 domains may hold 5 of a segment's 8 shards, and repairs
    // crowd the surviving regions before the next one goes.
    assert!(
        with.durability.segments_lost * 5 < without.durability.segments_lost,
        "{:?}",
        with.durability
    );
    assert!(with.repair.repairs > 1000 && with.repair.repair_bytes > 0);
    // The vanished nodes were caught, disqualified and slashed.
    let v = detection(&with, Kind::Vanished);
    assert_eq!(v.detected, v.cases);
    assert!(v.cases >= 290, "{v:?}");
    assert!(with.economics.disqualified_nodes >= v.cases);
    assert!(with.economics.slashed > 0 && with.economics.bounties > 0);
}

fn churn(graceful: f64) -> Report {
    simulate(&Scenario {
        nodes: 300,
        segments: 2000,
        years: 0.1,
        churn: Churn {
            leave_per_year: 2.0,
            graceful,
        },
        failures: Failures {
            afr: 0.0,
            domain_outages_per_year: 0.0,
            region_outages_per_year: 0.0,
            ..Failures::default()
        },
        ..Scenario::default()
    })
    .expect("scenario runs")
}

#[test]
fn graceful_leaves_hand_over_and_vanishing_nodes_are_slashed() {
    let graceful = churn(1.0);
    assert!(graceful.events.graceful_leaves > 30);
    assert_eq!(graceful.events.vanished, 0);
    assert!(graceful.repair.handoff_bytes > 0);
    assert_eq!(graceful.economics.slashed, 0);
    assert_eq!(graceful.repair.repairs, 0);
    let vanish = churn(0.0);
    assert!(vanish.events.vanished > 30);
    assert_eq!(vanish.repair.handoff_bytes, 0);
    // Disqualified a day after vanishing: all but the last day's.
    let (dq, gone) = (vanish.economics.disqualified_nodes, vanish.events.vanished);
    assert!(dq <= gone && dq * 10 >= gone * 8, "{dq} of {gone}");
    assert!(vanish.economics.slashed > 0);
    assert!(detection(&vanish, Kind::Vanished).max_hours <= 2.0);
}

#[test]
fn the_network_and_its_data_grow() {
    let r = simulate(&Scenario {
        nodes: 200,
        segments: 1000,
        years: 0.2,
        growth: Growth {
            nodes_per_year: 2.0,
            segments_per_year: 2.0,
        },
        ..Scenario::default()
    })
    .unwrap();
    // 40 % more of each expected; Poisson noise allowed.
    assert!(
        (60..=100).contains(&(r.setup.nodes_at_end - 200)),
        "{:?}",
        r.setup
    );
    assert!(
        (300..=500).contains(&r.events.files_uploaded),
        "{:?}",
        r.events
    );
    assert_eq!(r.setup.files, 1000 + r.events.files_uploaded);
}

#[test]
fn a_temporary_outage_makes_nodes_faulty_then_active_again() {
    let s = Scenario {
        nodes: 200,
        domains: 10,
        segments: 1000,
        years: 0.01,
        proofs: Proofs {
            faulty_after: Some(2),
            disqualify_after: Some(48),
            ..Proofs::default()
        },
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
        events: vec![ScriptedOutage {
            at_hours: 10.5,
            kind: OutageKind::Domain,
            index: 3,
            hours: Some(20.0),
        }],
        ..Scenario::default()
    };
    let r = simulate(&s).unwrap();
    let peak = r.series.iter().map(|p| p.faulty_nodes).max().unwrap();
    assert_eq!(peak, 20, "the domain's 20 nodes turned faulty");
    assert_eq!(r.series.last().unwrap().faulty_nodes, 0, "and recovered");
    assert_eq!(r.economics.disqualified_nodes, 0);
    assert_eq!(r.durability.segments_lost, 0);
}

#[test]
fn the_shipped_scenarios_parse() {
    for (name, text) in [
        ("default", include_str!("../scenarios/default.toml")),
        ("harsh", include_str!("../scenarios/harsh.toml")),
        ("cheaters", include_str!("../scenarios/cheaters.toml")),
        ("growth", include_str!("../scenarios/growth.toml")),
    ] {
        Scenario::from_toml(text).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
