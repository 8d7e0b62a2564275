//! `scale.png`: the Ready fraction over time, one line per run. Time on a
//! log axis: runs span from about a second (tuned) to many minutes
//! (defaults at 10,000).

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::FontStyle;

use super::result::RunResult;

/// Where the font comes from: `BENCH_FONT` (set by `make bench`, which
/// fetches DejaVu when the system has none), else the system's DejaVu.
fn font_path() -> PathBuf {
    std::env::var_os("BENCH_FONT").map_or_else(
        || PathBuf::from("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
        PathBuf::from,
    )
}

/// Registers the font as "sans-serif" once; plotters keeps it for the
/// process (hence leaked, a few hundred KiB once).
fn register_font() -> Result<(), String> {
    let path = font_path();
    let bytes = std::fs::read(&path).map_err(|e| format!("font {}: {e}", path.display()))?;
    plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(bytes.into()))
        // plotters' InvalidFont carries no detail to keep.
        .map_err(|_invalid| format!("font {}: not a TrueType font", path.display()))
}

fn label(r: &RunResult) -> String {
    format!("{} N={} conflicts={}", r.mode.name(), r.orders, r.conflicts)
}

/// Draws every run's timeline into `dir/scale.png`.
pub fn draw(dir: &Path, runs: &[RunResult]) -> Result<PathBuf, String> {
    register_font()?;
    let file = dir.join("scale.png");
    let root = BitMapBackend::new(&file, (1280, 800)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let end = runs
        .iter()
        .filter_map(|r| r.timeline.last().map(|p| p.0))
        .fold(1.0_f64, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption("Orders Ready over time", ("sans-serif", 28))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d((0.1_f64..end * 1.1).log_scale(), 0.0_f64..100.0)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("seconds since the operator started (log scale)")
        .y_desc("orders Ready (%)")
        .label_style(("sans-serif", 16))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, r) in runs.iter().enumerate() {
        let color = Palette99::pick(i).stroke_width(2);
        let points = r.timeline.iter().map(|(t, f)| (t.max(0.1), f * 100.0));
        chart
            .draw_series(LineSeries::new(points, color))
            .map_err(|e| e.to_string())?
            .label(label(r))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], color));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())?;
    drop(chart);
    drop(root);
    Ok(file)
}
