//! The latency percentile distribution (the classic HdrHistogram plot) of every phase, as a self-contained
//! SVG: x is the percentile on a log scale of 1 / (1 − q), 50% … 99.99%, so every extra nine gets the same
//! width; y is the latency, also on a log scale, so "twice the floor" is the same height at any latency and a
//! stall of 40 ms does not flatten a 300 µs floor into the axis.
//!
//! Our own ~200 lines rather than a plotting crate: one chart type, two log axes and a legend, text out; a
//! crate (plotters and its font stack) would cost more build time than the code it saves.

use std::fmt::Write;

use hdrhistogram::Histogram;
use serde::Serialize;

/// The lowest and highest "x" of the chart: 1 / (1 − q) for 50% and 99.99%.
const X_FROM: f64 = 2.0;
const X_TO: f64 = 10_000.0;
/// Points per decade of x.
const POINTS_PER_DECADE: f64 = 24.0;

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 560.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 280.0;
const TOP: f64 = 48.0;
const BOTTOM: f64 = 56.0;

/// Floor blue, echo green, engine red, where the chart has one rate; with several, a colour per rate.
const KIND_COLOURS: [&str; 3] = ["#1f77b4", "#2ca02c", "#d62728"];

/// Which side of the comparison a series is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The raw fan-out baseline.
    Floor,
    /// The echo fan-out server baseline.
    Echo,
    /// The engine.
    Engine,
}

/// One phase's latency by percentile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    /// e.g. `engine ping @1000/s`.
    pub label: String,
    pub kind: Kind,
    pub rate: f64,
    /// (percentile, 0–100; latency, µs), percentiles rising.
    pub points: Vec<(f64, u64)>,
}

/// The percentile distribution of a histogram from 50% up to 99.99%, stopping where its sample count can no
/// longer tell one percentile from the next (at 1,000 samples, past 99.9% it would only repeat the max).
pub fn percentile_series(histogram: &Histogram<u64>) -> Vec<(f64, u64)> {
    let count = histogram.len() as f64;
    if count == 0.0 {
        return Vec::new();
    }
    let steps = ((X_TO / X_FROM).log10() * POINTS_PER_DECADE).round() as u32;
    let mut points = Vec::new();
    for step in 0..=steps {
        // Evenly spaced in log(x), ending exactly at 99.99%.
        let x = X_FROM * (X_TO / X_FROM).powf(f64::from(step) / f64::from(steps));
        if x > count.max(X_FROM) {
            break;
        }
        let quantile = 1.0 - 1.0 / x;
        points.push((quantile * 100.0, histogram.value_at_quantile(quantile)));
    }
    points
}

/// Where a percentile falls on the x axis, 0 (50%) to 1 (99.99%).
pub fn x_fraction(percentile: f64) -> f64 {
    let x = 1.0 / (1.0 - (percentile / 100.0).min(0.999_999));
    ((x / X_FROM).log10() / (X_TO / X_FROM).log10()).clamp(0.0, 1.0)
}

/// The x-axis ticks: (percentile, label).
pub fn x_ticks() -> [(f64, &'static str); 5] {
    [(50.0, "50%"), (90.0, "90%"), (99.0, "99%"), (99.9, "99.9%"), (99.99, "99.99%")]
}

/// The y range, widened to whole 1-2-5 steps around `[low, high]` (µs), and its ticks.
pub fn y_ticks(low: u64, high: u64) -> (f64, f64, Vec<f64>) {
    let steps = |decade: f64| [decade, 2.0 * decade, 5.0 * decade];
    let low = (low.max(1)) as f64;
    let high = (high as f64).max(low * 2.0);
    let from = {
        let decade = 10f64.powi(low.log10().floor() as i32);
        steps(decade).into_iter().rev().find(|s| *s <= low).unwrap_or(decade)
    };
    let to = {
        let decade = 10f64.powi(high.log10().floor() as i32);
        steps(decade).into_iter().chain([10.0 * decade]).find(|s| *s >= high).unwrap_or(10.0 * decade)
    };
    let mut ticks = Vec::new();
    let mut decade = 10f64.powi(from.log10().floor() as i32);
    while decade <= to {
        ticks.extend(steps(decade).into_iter().filter(|t| *t >= from * 0.999 && *t <= to * 1.001));
        decade *= 10.0;
    }
    (from, to, ticks)
}

/// A latency tick label: `200 µs`, `1 ms`, `50 ms`, `2 s`.
pub fn latency_label(us: f64) -> String {
    match us {
        us if us < 1_000.0 => format!("{us:.0} µs"),
        us if us < 1_000_000.0 => format!("{} ms", trim(us / 1e3)),
        us => format!("{} s", trim(us / 1e6)),
    }
}

fn trim(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The whole chart as an SVG document.
pub fn svg(title: &str, series: &[Series]) -> String {
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let values = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let (low, high) = values.fold((u64::MAX, 0), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (from, to, ticks) = if high == 0 { y_ticks(100, 1_000) } else { y_ticks(low, high) };
    let x_at = |percentile: f64| LEFT + x_fraction(percentile) * plot_w;
    let y_at = |us: f64| TOP + plot_h * (1.0 - (us.max(from) / from).log10() / (to / from).log10());

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#);
    let _ = writeln!(out, r#"<text x="{LEFT}" y="24" font-size="15" font-weight="bold">{}</text>"#, escape(title));
    for (percentile, label) in x_ticks() {
        let x = x_at(percentile);
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
            TOP + plot_h,
            TOP + plot_h + 18.0
        );
    }
    for tick in &ticks {
        let y = y_at(*tick);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            y + 4.0,
            latency_label(*tick)
        );
    }
    let _ =
        writeln!(out, r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#444"/>"##);
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile (log scale of 1 / (1 − percentile))</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 14.0
    );
    let _ = writeln!(
        out,
        r#"<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">latency from the scheduled send time (log scale)</text>"#,
        TOP + plot_h / 2.0
    );
    // The legend reads by rate, then floor, echo, engine.
    let mut ordered: Vec<&Series> = series.iter().collect();
    ordered.sort_by(|a, b| a.rate.total_cmp(&b.rate).then((a.kind as u8).cmp(&(b.kind as u8))));
    let mut rates: Vec<f64> = ordered.iter().map(|s| s.rate).collect();
    rates.dedup_by(|a, b| (*a - *b).abs() < 0.5);
    for (index, line) in ordered.into_iter().enumerate() {
        let colour = match rates.iter().position(|r| (r - line.rate).abs() < 0.5) {
            Some(_) if rates.len() == 1 => KIND_COLOURS[line.kind as usize].to_owned(),
            Some(i) => rate_colour(i, rates.len()),
            None => KIND_COLOURS[0].to_owned(),
        };
        let dash = match line.kind {
            Kind::Floor => r#" stroke-dasharray="7 4""#,
            Kind::Echo => r#" stroke-dasharray="2 3""#,
            Kind::Engine => "",
        };
        let path: Vec<String> =
            line.points.iter().map(|(p, us)| format!("{:.1},{:.1}", x_at(*p), y_at(*us as f64))).collect();
        if !path.is_empty() {
            let _ = writeln!(
                out,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="2"{dash} points="{}"/>"#,
                path.join(" ")
            );
        }
        let y = TOP + 8.0 + index as f64 * 18.0;
        let x = LEFT + plot_w + 16.0;
        let _ = writeln!(
            out,
            r#"<line x1="{x:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{colour}" stroke-width="2"{dash}/><text x="{:.1}" y="{:.1}">{}</text>"#,
            x + 28.0,
            x + 34.0,
            y + 4.0,
            escape(&line.label)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// Rate `index` of `count`: hues spread around the wheel from blue, so any number of rates stay apart.
fn rate_colour(index: usize, count: usize) -> String {
    let hue = (210.0 + 360.0 * index as f64 / count.max(1) as f64) % 360.0;
    format!("hsl({hue:.0}, 70%, 42%)")
}

/// Text as SVG character data or attribute value.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{histogram, record};
    use std::time::Duration;

    fn uniform(count: u64) -> Histogram<u64> {
        let mut h = histogram();
        for i in 1..=count {
            record(&mut h, Duration::from_micros(100 + i));
        }
        h
    }

    #[test]
    fn the_series_rises_from_the_median_and_stops_where_the_samples_do() {
        let points = percentile_series(&uniform(1_000));
        assert_eq!(points[0].0, 50.0);
        assert!(points.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1), "{points:?}");
        // 1,000 samples resolve 99.9% (x = 1,000) and no further.
        let last = points.last().unwrap().0;
        assert!((99.85..=99.9 + 1e-9).contains(&last), "{last}");
        assert!((points[0].1 as i64 - 600).abs() <= 1, "median of 101..=1100 µs: {points:?}");

        let deep = percentile_series(&uniform(20_000));
        assert!((deep.last().unwrap().0 - 99.99).abs() < 1e-6, "{:?}", deep.last());
        assert!(percentile_series(&histogram()).is_empty());
    }

    #[test]
    fn the_x_axis_gives_every_nine_the_same_width() {
        let ticks: Vec<f64> = x_ticks().iter().map(|(p, _)| x_fraction(*p)).collect();
        assert_eq!(ticks[0], 0.0);
        assert!((ticks[4] - 1.0).abs() < 1e-9);
        let widths: Vec<f64> = ticks.windows(2).skip(1).map(|w| w[1] - w[0]).collect();
        assert!(widths.iter().all(|w| (w - widths[0]).abs() < 1e-9), "{widths:?}");
    }

    #[test]
    fn the_y_axis_ticks_in_1_2_5_steps_around_the_data() {
        let (from, to, ticks) = y_ticks(280, 43_000);
        assert_eq!((from, to), (200.0, 50_000.0));
        assert_eq!(ticks, [200.0, 500.0, 1_000.0, 2_000.0, 5_000.0, 10_000.0, 20_000.0, 50_000.0]);
        let labels: Vec<String> = ticks.iter().map(|t| latency_label(*t)).collect();
        assert_eq!(labels[..3], ["200 µs", "500 µs", "1 ms"]);
        assert_eq!(latency_label(2_500_000.0), "2.5 s");
    }

    #[test]
    fn the_svg_is_well_formed_and_names_every_series() {
        let series = vec![
            Series {
                label: "floor @200/s".into(),
                kind: Kind::Floor,
                rate: 200.0,
                points: percentile_series(&uniform(500)),
            },
            Series {
                label: "engine <ping> & co @200/s".into(),
                kind: Kind::Engine,
                rate: 200.0,
                points: percentile_series(&uniform(500)),
            },
        ];
        let text = svg("baseline-10 \"quoted\"", &series);
        assert_balanced(&text);
        assert!(text.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(text.contains("engine &lt;ping&gt; &amp; co @200/s"));
        assert!(text.contains("baseline-10 &quot;quoted&quot;"));
        for (_, label) in x_ticks() {
            assert!(text.contains(&format!(">{label}</text>")), "{label} missing");
        }
        assert_eq!(text.matches("<polyline").count(), 2);
        assert_eq!(text.matches("stroke-dasharray=\"7 4\"").count(), 2, "floor line and its legend are dashed");
        // An empty chart is still a document.
        assert_balanced(&svg("empty", &[]));
    }

    #[test]
    fn the_legend_reads_by_rate_and_every_rate_has_its_own_colour() {
        let line = |kind, rate: f64| Series {
            label: format!("{kind:?} @{rate:.0}/s"),
            kind,
            rate,
            points: percentile_series(&uniform(100)),
        };
        let series: Vec<Series> = [800.0, 200.0, 400.0, 1_600.0, 3_200.0, 2_400.0, 2_000.0, 2_200.0, 1_100.0]
            .into_iter()
            .flat_map(|rate| [line(Kind::Engine, rate), line(Kind::Floor, rate)])
            .collect();
        let text = svg("t", &series);
        let legend: Vec<usize> = ["Floor @200/s", "Engine @200/s", "Floor @400/s", "Engine @3200/s"]
            .iter()
            .map(|label| text.find(&format!(">{label}<")).unwrap_or_else(|| panic!("{label}")))
            .collect();
        assert!(legend.windows(2).all(|w| w[0] < w[1]), "legend out of order: {legend:?}");
        let colours: std::collections::BTreeSet<String> = (0..9).map(|i| rate_colour(i, 9)).collect();
        assert_eq!(colours.len(), 9);
    }

    /// Every element opened is closed, in order, and nothing but whitespace lies outside the root.
    fn assert_balanced(text: &str) {
        let mut open: Vec<String> = Vec::new();
        let mut rest = text;
        let mut roots = 0;
        while let Some(start) = rest.find('<') {
            if open.is_empty() {
                assert!(rest[..start].trim().is_empty(), "text outside the root: {:?}", &rest[..start]);
            }
            let end = rest[start..].find('>').expect("every tag ends") + start;
            let tag = &rest[start + 1..end];
            assert!(!tag.contains('<'), "a tag inside a tag: {tag}");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(open.pop().as_deref(), Some(name.trim()), "closing {name} out of order");
            } else if !tag.ends_with('/') {
                open.push(tag.split_whitespace().next().unwrap_or_default().to_owned());
            }
            if open.is_empty() {
                roots += 1;
            }
            rest = &rest[end + 1..];
        }
        assert!(open.is_empty(), "unclosed: {open:?}");
        assert!(rest.trim().is_empty());
        assert!(roots >= 1);
        // Attribute values never hold a raw quote or angle bracket (escape() covers them).
        assert!(!text.contains("=\"\""), "an empty attribute");
    }
}
