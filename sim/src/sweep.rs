//! Sweeps: one parameter varied over a base scenario, each point a full run.

use serde::Serialize;

use crate::report::Report;
use crate::scenario::Scenario;
use crate::{simulate_with, SimError};

/// What a sweep varies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Axis {
    /// The repair threshold, over these values.
    Threshold(Vec<usize>),
    /// The code, over these (k, m) pairs.
    Code(Vec<(u16, u16)>),
}

impl std::str::FromStr for Axis {
    type Err = SimError;

    /// `threshold=11,13,15,20` or `code=10/20,4/8,29/51`;
    /// `threshold` alone sweeps every threshold from k to n − 1.
    fn from_str(text: &str) -> Result<Self, SimError> {
        let bad = |why: &str| SimError::Config(format!("--sweep {text}: {why}"));
        let (name, values) = text.split_once('=').unwrap_or((text, ""));
        match name {
            "threshold" => {
                let v = values
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| s.trim().parse().map_err(|_| bad("not a number")))
                    .collect::<Result<Vec<usize>, _>>()?;
                Ok(Axis::Threshold(v))
            }
            "code" => {
                let v = values
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        let (k, m) = s.split_once('/').ok_or_else(|| bad("write k/m"))?;
                        Ok((
                            k.trim().parse().map_err(|_| bad("k is not a number"))?,
                            m.trim().parse().map_err(|_| bad("m is not a number"))?,
                        ))
                    })
                    .collect::<Result<Vec<(u16, u16)>, SimError>>()?;
                if v.is_empty() {
                    return Err(bad("name at least one k/m"));
                }
                Ok(Axis::Code(v))
            }
            _ => Err(bad("sweep 'threshold' or 'code'")),
        }
    }
}

/// One point of a sweep.
#[derive(Debug, Clone, Serialize)]
pub struct SweepPoint {
    pub label: String,
    /// Runs averaged (seeds `seed`, `seed + 1`, …).
    pub runs: u32,
    pub k: usize,
    pub n: usize,
    pub repair_threshold: usize,
    pub segments_lost: u64,
    pub annual_segment_loss: f64,
    pub durability: f64,
    pub repair_bytes_per_stored_byte_year: f64,
    pub expansion: f64,
}

impl SweepPoint {
    /// The mean of runs that differ only in their seed.
    fn of(label: String, reports: &[Report]) -> Self {
        let runs = reports.len().max(1) as f64;
        let first = &reports[0];
        let mean = |f: &dyn Fn(&Report) -> f64| reports.iter().map(f).sum::<f64>() / runs;
        Self {
            label,
            runs: reports.len() as u32,
            k: first.setup.k,
            n: first.setup.n,
            repair_threshold: first.setup.repair_threshold,
            segments_lost: reports.iter().map(|r| r.durability.segments_lost).sum(),
            annual_segment_loss: mean(&|r| r.durability.annual_segment_loss),
            durability: mean(&|r| r.durability.durability),
            repair_bytes_per_stored_byte_year: mean(&|r| {
                r.repair.repair_bytes_per_stored_byte_year
            }),
            expansion: first.setup.n as f64 / first.setup.k as f64,
        }
    }
}

/// The scenarios of a sweep, with their labels.
pub fn variants(base: &Scenario, axis: &Axis) -> Result<Vec<(String, Scenario)>, SimError> {
    let params = base.params()?;
    Ok(match axis {
        Axis::Threshold(values) => {
            let values: Vec<usize> = if values.is_empty() {
                (params.k()..params.n()).collect()
            } else {
                values.clone()
            };
            values
                .into_iter()
                .map(|t| {
                    (
                        format!("threshold {t}"),
                        Scenario {
                            repair_threshold: Some(t),
                            ..base.clone()
                        },
                    )
                })
                .collect()
        }
        Axis::Code(codes) => codes
            .iter()
            .map(|&(k, m)| {
                (
                    format!("RS({k},{})", k + m),
                    Scenario {
                        data_shards: k,
                        parity_shards: m,
                        repair_threshold: None,
                        ..base.clone()
                    },
                )
            })
            .collect(),
    })
}

/// Runs every point `runs` times (seeds `seed ..`, the same for every
/// point, so points differ by the parameter alone); `progress(done, total)`
/// counts periods over all runs.
pub fn run(
    base: &Scenario,
    axis: &Axis,
    runs: u32,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Vec<SweepPoint>, SimError> {
    let points = variants(base, axis)?;
    for (_, s) in &points {
        s.validate()?;
    }
    let runs = runs.max(1) as u64;
    let count = points.len() as u64 * runs;
    let mut out = Vec::with_capacity(points.len());
    let mut i = 0u64;
    for (label, s) in points {
        let mut reports = Vec::with_capacity(runs as usize);
        for r in 0..runs {
            let seeded = Scenario {
                seed: s.seed.wrapping_add(r),
                ..s.clone()
            };
            reports.push(simulate_with(&seeded, &mut |done, total| {
                progress(i * total + done, count * total)
            })?);
            i += 1;
        }
        out.push(SweepPoint::of(label, &reports));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_parse_and_refuse_nonsense() {
        assert_eq!(
            "threshold=11,15".parse::<Axis>().unwrap(),
            Axis::Threshold(vec![11, 15])
        );
        assert_eq!(
            "threshold".parse::<Axis>().unwrap(),
            Axis::Threshold(vec![])
        );
        assert_eq!(
            "code=10/20,29/51".parse::<Axis>().unwrap(),
            Axis::Code(vec![(10, 20), (29, 51)])
        );
        assert!("code=10".parse::<Axis>().is_err());
        assert!("code=".parse::<Axis>().is_err());
        assert!("speed=3".parse::<Axis>().is_err());
        assert!("threshold=x".parse::<Axis>().is_err());
        let v = variants(&Scenario::default(), &Axis::Threshold(vec![])).unwrap();
        assert_eq!(v.len(), 20);
    }
}
