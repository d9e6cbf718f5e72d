//! Plots as SVG files (plotters' SVG backend: no system fonts needed).

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::report::Report;
use crate::sweep::SweepPoint;
use crate::SimError;

const SIZE: (u32, u32) = (800, 480);
const COLOURS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

fn err(e: impl std::fmt::Display) -> SimError {
    SimError::Plot(e.to_string())
}

type Series<'a> = (&'a str, Vec<(f64, f64)>);

fn upper(series: &[Series<'_>], pick: impl Fn(&(f64, f64)) -> f64) -> f64 {
    let top = series
        .iter()
        .flat_map(|(_, v)| v.iter().map(&pick))
        .fold(0.0f64, f64::max);
    if top > 0.0 {
        top * 1.05
    } else {
        1.0
    }
}

/// One chart of lines over a shared x axis.
fn lines(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series<'_>],
) -> Result<(), SimError> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (x_max, y_max) = (upper(series, |p| p.0), upper(series, |p| p.1));
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()
        .map_err(err)?;
    for (i, (name, points)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                colour.stroke_width(2),
            ))
            .map_err(err)?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
    }
    if series.len() > 1 {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

/// Writes a run's plots over time into `dir`; returns the files written.
pub fn run_plots(report: &Report, dir: &Path, prefix: &str) -> Result<Vec<PathBuf>, SimError> {
    std::fs::create_dir_all(dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
    let s = &report.series;
    let at = |f: &dyn Fn(&crate::report::Point) -> f64| -> Vec<(f64, f64)> {
        s.iter().map(|p| (p.day, f(p))).collect()
    };
    let title = format!(
        "RS({},{}), threshold {}, {} nodes",
        report.setup.k, report.setup.n, report.setup.repair_threshold, report.setup.nodes
    );
    let files = [
        (
            "losses",
            "segments lost",
            vec![("segments lost", at(&|p| p.segments_lost as f64))],
        ),
        (
            "repair",
            "repair + handoff traffic (GiB)",
            vec![("GiB moved", at(&|p| p.repair_gib))],
        ),
        (
            "health",
            "count",
            vec![
                ("faulty nodes", at(&|p| p.faulty_nodes as f64)),
                (
                    "files at or below threshold",
                    at(&|p| p.files_below_threshold as f64),
                ),
                ("files unavailable", at(&|p| p.files_unavailable as f64)),
            ],
        ),
    ];
    let mut written = Vec::new();
    for (name, y, series) in files {
        let path = dir.join(format!("{prefix}{name}.svg"));
        lines(&path, &title, "day", y, &series)?;
        written.push(path);
    }
    Ok(written)
}

/// Nines of durability per year, `−log10(annual loss)`; a run that lost
/// nothing is drawn at the bound its size allows (one loss), marked "≥".
pub fn nines(point: &SweepPoint, segment_years: f64) -> (f64, bool) {
    if point.annual_segment_loss > 0.0 {
        (-point.annual_segment_loss.log10(), false)
    } else {
        (segment_years.max(1.0).log10(), true)
    }
}

/// The trade-off curve of a sweep: repair traffic against durability;
/// `connect` joins the points in order (for a parameter that varies
/// steadily, such as the threshold).
pub fn sweep_plot(
    points: &[SweepPoint],
    segment_years: f64,
    connect: bool,
    dir: &Path,
    name: &str,
) -> Result<PathBuf, SimError> {
    std::fs::create_dir_all(dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
    let path = dir.join(format!("{name}.svg"));
    draw_sweep(points, segment_years, connect, &path)?;
    Ok(path)
}

fn draw_sweep(
    points: &[SweepPoint],
    segment_years: f64,
    connect: bool,
    path: &Path,
) -> Result<(), SimError> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let xy: Vec<(f64, f64, bool, &str)> = points
        .iter()
        .map(|p| {
            let (y, bound) = nines(p, segment_years);
            (
                p.repair_bytes_per_stored_byte_year,
                y,
                bound,
                p.label.as_str(),
            )
        })
        .collect();
    let x_max = xy.iter().map(|p| p.0).fold(0.0f64, f64::max).max(1e-3) * 1.15;
    let y_max = xy.iter().map(|p| p.1).fold(0.0f64, f64::max).max(1.0) + 1.0;
    let mut chart = ChartBuilder::on(&root)
        .caption("durability against repair traffic", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("repair bytes per stored byte per year")
        .y_desc("nines of annual segment durability")
        .draw()
        .map_err(err)?;
    let colour = COLOURS[0];
    if connect {
        chart
            .draw_series(LineSeries::new(xy.iter().map(|p| (p.0, p.1)), colour))
            .map_err(err)?;
    }
    chart
        .draw_series(xy.iter().map(|&(x, y, bound, label)| {
            let text = if bound {
                format!("{label} (≥)")
            } else {
                label.to_string()
            };
            EmptyElement::at((x, y))
                + Circle::new((0, 0), 4, colour.filled())
                + Text::new(text, (6, -14), ("sans-serif", 13))
        }))
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}
