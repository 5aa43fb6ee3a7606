//! `tune`'s plot: warm latency (p50, p99) and cost per million requests against memory
//! size, one panel each, as an SVG (plotters' SVG backend: text stays text, no fonts needed).

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use plotters::prelude::*;

use super::Report;

const WIDTH: u32 = 900;
const HEIGHT: u32 = 640;

/// Writes the plot to `path` (a temporary file renamed into place).
pub fn write(report: &Report, path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension("svg.tmp");
    draw(report, &tmp).map_err(|e| anyhow!("cannot draw {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot move {} to {}", tmp.display(), path.display()))
}

/// One point of a series: memory size (MB) and value.
type Point = (f64, f64);

fn draw(report: &Report, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let usable: Vec<_> = report.sizes.iter().filter(|s| s.usable()).collect();
    let p50: Vec<Point> = usable
        .iter()
        .filter_map(|s| Some((f64::from(s.memory_mb), s.warm.as_ref()?.p50_ms)))
        .collect();
    let p99: Vec<Point> = usable
        .iter()
        .filter_map(|s| Some((f64::from(s.memory_mb), s.warm.as_ref()?.p99_ms)))
        .collect();
    let cost: Vec<Point> = usable
        .iter()
        .filter_map(|s| Some((f64::from(s.memory_mb), s.usd_per_million?)))
        .collect();
    let memory: Vec<f64> = report
        .sizes
        .iter()
        .map(|s| f64::from(s.memory_mb))
        .collect();
    let lo = memory
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .min(128.0);
    let hi = memory.iter().copied().fold(0.0, f64::max).max(lo + 1.0);
    let x = (lo * 0.9)..(hi * 1.05);

    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(HEIGHT / 2);

    let top_y = p99.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-3) * 1.15;
    let mut latency = ChartBuilder::on(&top)
        .caption(
            format!("{}: warm latency against memory size", report.model),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(x.clone(), 0.0..top_y)?;
    latency
        .configure_mesh()
        .x_desc("memory (MB)")
        .y_desc("ms")
        .draw()?;
    for (points, color, label) in [(&p50, BLUE, "warm p50"), (&p99, RED, "warm p99")] {
        latency
            .draw_series(LineSeries::new(points.iter().copied(), color))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        latency.draw_series(
            points
                .iter()
                .map(move |p| Circle::new(*p, 3, color.filled())),
        )?;
    }
    latency
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;

    let cost_y = cost.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-6) * 1.15;
    let mut price = ChartBuilder::on(&bottom)
        .caption(
            format!(
                "USD per million warm requests ({:?}, ${}/GB-s)",
                report.prices.arch, report.prices.gb_second
            ),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(x, 0.0..cost_y)?;
    price
        .configure_mesh()
        .x_desc("memory (MB)")
        .y_desc("USD / 1M requests")
        .draw()?;
    price.draw_series(LineSeries::new(cost.iter().copied(), GREEN))?;
    price.draw_series(cost.iter().map(|p| Circle::new(*p, 3, GREEN.filled())))?;
    // Sizes that ran out of memory (or failed otherwise) are marked on the axis.
    for s in report.sizes.iter().filter(|s| s.failed.is_some()) {
        let at = (f64::from(s.memory_mb), 0.0);
        price.draw_series(std::iter::once(Cross::new(at, 6, RED.stroke_width(2))))?;
    }
    root.present()?;
    Ok(())
}
