//! Charts as SVG drawn on the server: stacked bars and lines, colours from classes of
//! the stylesheet (`c0`..`c7`), values in `<title>` tooltips.

use maud::{Markup, html};

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 70.0;
const BOTTOM: f64 = 24.0;

/// The colour class of the `i`th series.
pub(crate) fn colour(i: usize) -> String {
    format!("c{}", i % 8)
}

/// A legend of series names with their colours.
pub(crate) fn legend(names: &[String]) -> Markup {
    html! {
        ul.legend {
            @for (i, name) in names.iter().enumerate() {
                li { svg.swatch viewBox="0 0 10 10" width="10" height="10" { rect width="10" height="10" class=(colour(i)) {} } " " (name) }
            }
        }
    }
}

/// Axis labels: `max` at the top, 0 at the bottom, the first and last bucket below.
fn axes(max: f64, first: &str, last: &str, format: &dyn Fn(f64) -> String) -> Markup {
    html! {
        line.axis x1=(LEFT) y1="0" x2=(LEFT) y2=(HEIGHT - BOTTOM) {}
        line.axis x1=(LEFT) y1=(HEIGHT - BOTTOM) x2=(WIDTH) y2=(HEIGHT - BOTTOM) {}
        text.label x=(LEFT - 6.0) y="12" text-anchor="end" { (format(max)) }
        text.label x=(LEFT - 6.0) y=(HEIGHT - BOTTOM) text-anchor="end" { "0" }
        text.label x=(LEFT) y=(HEIGHT - 6.0) { (first) }
        text.label x=(WIDTH) y=(HEIGHT - 6.0) text-anchor="end" { (last) }
    }
}

/// Stacked bars: one bar per bucket (`labels`), one segment per series; `values[s][b]`
/// is series `s` in bucket `b`.
pub(crate) fn stacked_bars(
    labels: &[String],
    names: &[String],
    values: &[Vec<f64>],
    format: &dyn Fn(f64) -> String,
) -> Markup {
    let totals: Vec<f64> = (0..labels.len())
        .map(|b| {
            values
                .iter()
                .map(|s| s.get(b).copied().unwrap_or(0.0))
                .sum()
        })
        .collect();
    let max = totals.iter().copied().fold(0.0, f64::max);
    let plot = HEIGHT - BOTTOM;
    let slot = (WIDTH - LEFT) / labels.len().max(1) as f64;
    let bar = (slot * 0.8).max(1.0);
    let scale = if max > 0.0 { plot / max } else { 0.0 };
    html! {
        svg.chart viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" {
            (axes(max, labels.first().map_or("", String::as_str), labels.last().map_or("", String::as_str), format))
            @for (b, label) in labels.iter().enumerate() {
                @let mut y = plot;
                @for (s, series) in values.iter().enumerate() {
                    @let v = series.get(b).copied().unwrap_or(0.0);
                    @if v > 0.0 {
                        @let h = v * scale;
                        @let top = { y -= h; y };
                        rect x=(format!("{:.1}", LEFT + b as f64 * slot + (slot - bar) / 2.0)) y=(format!("{top:.1}"))
                             width=(format!("{bar:.1}")) height=(format!("{h:.1}")) class=(colour(s)) {
                            title { (label) " · " (names.get(s).map_or("", String::as_str)) ": " (format(v)) }
                        }
                    }
                }
            }
        }
        (legend(names))
    }
}

/// Lines: one per series over the buckets; gaps where a bucket has no value.
pub(crate) fn lines(
    labels: &[String],
    names: &[String],
    values: &[Vec<Option<f64>>],
    format: &dyn Fn(f64) -> String,
) -> Markup {
    let max = values
        .iter()
        .flatten()
        .flatten()
        .copied()
        .fold(0.0, f64::max);
    let plot = HEIGHT - BOTTOM;
    let slot = (WIDTH - LEFT) / labels.len().max(1) as f64;
    let scale = if max > 0.0 { plot / max } else { 0.0 };
    let x = |b: usize| LEFT + (b as f64 + 0.5) * slot;
    html! {
        svg.chart viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" {
            (axes(max, labels.first().map_or("", String::as_str), labels.last().map_or("", String::as_str), format))
            @for (s, series) in values.iter().enumerate() {
                @let points: Vec<String> = series.iter().enumerate()
                    .filter_map(|(b, v)| v.map(|v| format!("{:.1},{:.1}", x(b), plot - v * scale))).collect();
                polyline.line class=(colour(s)) points=(points.join(" ")) {}
                @for (b, v) in series.iter().enumerate() {
                    @if let Some(v) = v {
                        circle cx=(format!("{:.1}", x(b))) cy=(format!("{:.1}", plot - v * scale)) r="3" class=(colour(s)) {
                            title { (labels[b]) " · " (names.get(s).map_or("", String::as_str)) ": " (format(*v)) }
                        }
                    }
                }
            }
        }
        (legend(names))
    }
}
