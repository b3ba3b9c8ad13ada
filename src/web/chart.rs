//! The dashboard's chart, drawn on the server as SVG: auctions and sales per minute over the last hour. No
//! script and no inline style (colours come from the page's stylesheet by class), and an accessible name
//! that says what it shows.

use std::fmt::Write;

use super::dashboard::Minute;

/// Minutes the chart shows.
pub const MINUTES: usize = 60;

/// The chart's accessible name.
pub const TITLE: &str = "Auctions and sales per minute over the last hour";

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;

/// The smallest of 1, 2, 5 × 10ⁿ at or above `n`: a round top for the scale.
fn round_up(n: u64) -> u64 {
    let mut step = 1;
    loop {
        for factor in [1, 2, 5] {
            if step * factor >= n {
                return step * factor;
            }
        }
        step *= 10;
    }
}

/// The chart of `minutes`, oldest first (each minute's `at` counts minutes since the epoch).
pub fn svg(minutes: &[Minute]) -> String {
    let auctions: u64 = minutes.iter().map(|m| m.auctions).sum();
    let sales: u64 = minutes.iter().map(|m| m.sales).sum();
    let peak = minutes.iter().map(|m| m.auctions.max(m.sales)).max().unwrap_or(0);
    let top = round_up(peak.max(1));
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let slot = plot_w / MINUTES.max(minutes.len()) as f64;
    let y = |n: u64| TOP + plot_h - plot_h * n as f64 / top as f64;

    let mut svg = String::with_capacity(16 * 1024);
    let _ = write!(
        svg,
        r#"<svg class="chart" role="img" aria-labelledby="chart-title" aria-describedby="chart-desc" viewBox="0 0 {WIDTH} {HEIGHT}" xmlns="http://www.w3.org/2000/svg"><title id="chart-title">{TITLE}</title><desc id="chart-desc">{auctions} auctions and {sales} sales in the last hour; at most {peak} in one minute.</desc>"#
    );
    let _ = write!(
        svg,
        r#"<line class="axis" x1="{LEFT}" y1="{base}" x2="{right}" y2="{base}"/><text class="tick" x="{lx}" y="{ty}" text-anchor="end">{top}</text><text class="tick" x="{lx}" y="{base}" text-anchor="end">0</text>"#,
        base = TOP + plot_h,
        right = WIDTH - RIGHT,
        lx = LEFT - 6.0,
        ty = TOP + 8.0,
    );
    for (i, minute) in minutes.iter().enumerate() {
        let x = LEFT + slot * i as f64;
        let label = chrono::DateTime::from_timestamp(minute.at * 60, 0)
            .map_or_else(String::new, |t| t.format("%H:%M").to_string());
        let _ = write!(svg, r#"<g><title>{label} UTC: {} auctions, {} sales</title>"#, minute.auctions, minute.sales);
        if minute.auctions > 0 {
            let _ = write!(
                svg,
                r#"<rect class="auctions" x="{x:.1}" y="{:.1}" width="{:.1}" height="{:.1}"/>"#,
                y(minute.auctions),
                slot * 0.8,
                TOP + plot_h - y(minute.auctions),
            );
        }
        if minute.sales > 0 {
            let _ = write!(
                svg,
                r#"<rect class="sales" x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}"/>"#,
                x + slot * 0.2,
                y(minute.sales),
                slot * 0.4,
                TOP + plot_h - y(minute.sales),
            );
        }
        svg.push_str("</g>");
    }
    let label_y = HEIGHT - 8.0;
    let _ = write!(
        svg,
        r#"<text class="tick" x="{LEFT}" y="{label_y}">60 min ago</text><text class="tick" x="{mid}" y="{label_y}" text-anchor="middle">30 min ago</text><text class="tick" x="{end}" y="{label_y}" text-anchor="end">now</text></svg>"#,
        mid = LEFT + plot_w / 2.0,
        end = WIDTH - RIGHT,
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_round_up() {
        assert_eq!([0, 1, 3, 7, 10, 11, 99, 101].map(round_up), [1, 1, 5, 10, 10, 20, 100, 200]);
    }

    #[test]
    fn the_chart_names_itself_and_draws_each_busy_minute() {
        let mut minutes: Vec<Minute> = (0..60).map(|at| Minute { at, ..Minute::default() }).collect();
        minutes[10] = Minute { at: 10, auctions: 40, sales: 12 };
        minutes[59] = Minute { at: 59, auctions: 7, sales: 0 };
        let svg = svg(&minutes);
        assert!(svg.contains(r#"role="img""#) && svg.contains(&format!("<title id=\"chart-title\">{TITLE}</title>")));
        assert!(svg.contains("47 auctions and 12 sales in the last hour; at most 40 in one minute"), "{svg}");
        assert_eq!(svg.matches(r#"class="auctions""#).count(), 2);
        assert_eq!(svg.matches(r#"class="sales""#).count(), 1);
        assert!(!svg.contains("style"), "the page's CSP forbids inline style");
        // The busiest minute reaches the top of the scale (50): its bar is 40/50 of the plot's height.
        assert!(svg.contains(r#"height="128.0""#), "{svg}");
    }
}
