//! The batch page's pictures, drawn on the server as SVG by hand (a few
//! rectangles, lines and texts each: smaller and clearer than a plotting
//! crate). Each picture is an `<svg role="img">` whose `<title>` and
//! `<desc>` name it and say what it shows; its numbers are in the table
//! beside it, and each bar or point carries its value (`data-value`), so a
//! test can read what was drawn.
//!
//! Sizes are in a fixed view box that scales to the page's width; labels
//! sit above their bars so that a phone's width (360 px) leaves room for
//! them, and a label longer than a line is shortened with `…` (the table
//! has it whole). Colours meet 3:1 against white (WCAG 1.4.11), and the
//! two lines differ by dash as well as colour.

use exhaust_core::summary::{Chart, Figure};
use std::fmt::Write;

/// The view box's width.
const WIDTH: f64 = 360.0;
/// Space right of the longest bar, for its value.
const VALUE_ROOM: f64 = 52.0;
/// The most characters of a label line.
const LABEL_CHARS: usize = 40;
/// Series colours: blue 700, amber 700, grey 600 (each at least 4.5:1 on white).
pub const COLOURS: [&str; 3] = ["#1d4ed8", "#b45309", "#4b5563"];

/// Escapes text for SVG content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters have no place in an SVG text.
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// `text` cut to `max` characters with `…` when longer.
pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

/// The SVG of a figure; `id` prefixes the ids of its title and description.
pub fn render(figure: &Figure, id: &str) -> String {
    let (height, body) = match &figure.chart {
        Chart::Bars { categories, values } => bars(categories, values),
        Chart::Stacked {
            categories,
            series,
            values,
        } => stacked(categories, series, values),
        Chart::Lines {
            periods,
            series,
            values,
        } => lines(periods, series, values),
    };
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {WIDTH} {height}" aria-labelledby="{id}-title {id}-desc" data-figure="{fid}"><title id="{id}-title">{title}</title><desc id="{id}-desc">{desc}</desc>{body}</svg>"#,
        fid = escape(&figure.id),
        title = escape(&figure.title),
        desc = escape(&figure.description),
    );
    out
}

fn no_data(out: &mut String) -> f64 {
    let _ = write!(
        out,
        r##"<text x="0" y="28" class="empty" fill="#374151" font-size="16">No data to draw.</text>"##
    );
    44.0
}

/// One bar per category: its label above it, its value after it.
fn bars(categories: &[String], values: &[u64]) -> (f64, String) {
    let mut out = String::new();
    if categories.is_empty() {
        let h = no_data(&mut out);
        return (h, out);
    }
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
    let span = WIDTH - VALUE_ROOM;
    let row = 46.0;
    for (i, (label, &v)) in categories.iter().zip(values).enumerate() {
        let y = 8.0 + row * i as f64;
        let w = (v as f64 / max * span).max(if v > 0 { 2.0 } else { 0.0 });
        let _ = write!(
            out,
            r##"<text x="0" y="{ly:.1}" font-size="15" fill="#1f2937">{label}</text><rect class="bar" x="0" y="{by:.1}" width="{w:.1}" height="18" fill="{c}" data-value="{v}"><title>{full}: {v}</title></rect><rect x="0" y="{by:.1}" width="{span:.1}" height="18" fill="none" stroke="#9ca3af" stroke-width="1"/><text x="{vx:.1}" y="{vy:.1}" font-size="15" fill="#1f2937">{v}</text>"##,
            ly = y + 14.0,
            by = y + 20.0,
            vx = span + 6.0,
            vy = y + 34.0,
            c = COLOURS[0],
            label = escape(&shorten(label, LABEL_CHARS)),
            full = escape(label),
        );
    }
    (8.0 + row * categories.len() as f64 + 4.0, out)
}

/// A legend of series names with their swatches, on one line each.
fn legend(series: &[String], out: &mut String, dashed: bool) -> f64 {
    for (k, name) in series.iter().enumerate() {
        let y = 6.0 + 22.0 * k as f64;
        let c = COLOURS[k % COLOURS.len()];
        if dashed {
            let dash = if k == 0 {
                ""
            } else {
                r#" stroke-dasharray="6 4""#
            };
            let _ = write!(
                out,
                r#"<line x1="0" y1="{my:.1}" x2="28" y2="{my:.1}" stroke="{c}" stroke-width="3"{dash}/>"#,
                my = y + 8.0
            );
        } else {
            let _ = write!(
                out,
                r#"<rect x="0" y="{y:.1}" width="16" height="16" fill="{c}"/>"#
            );
        }
        let _ = write!(
            out,
            r##"<text x="36" y="{ty:.1}" font-size="15" fill="#1f2937">{name}</text>"##,
            ty = y + 13.0,
            name = escape(name)
        );
    }
    6.0 + 22.0 * series.len() as f64 + 6.0
}

/// One bar per category, split by series, all bars on one scale (the
/// most learners of any category).
fn stacked(categories: &[String], series: &[String], values: &[Vec<u64>]) -> (f64, String) {
    let mut out = String::new();
    if categories.is_empty() {
        let h = no_data(&mut out);
        return (h, out);
    }
    let top = legend(series, &mut out, false);
    let max = values
        .iter()
        .map(|v| v.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let span = WIDTH - VALUE_ROOM - 48.0;
    let row = 46.0;
    for (i, (label, parts)) in categories.iter().zip(values).enumerate() {
        let y = top + row * i as f64;
        let _ = write!(
            out,
            r##"<text x="0" y="{ly:.1}" font-size="15" fill="#1f2937">{n}. {label}</text>"##,
            ly = y + 14.0,
            n = i + 1,
            label = escape(&shorten(label, LABEL_CHARS - 4)),
        );
        let mut x = 0.0;
        for (k, &v) in parts.iter().enumerate() {
            let w = v as f64 / max * span;
            let _ = write!(
                out,
                r#"<rect class="bar" x="{x:.1}" y="{by:.1}" width="{w:.1}" height="18" fill="{c}" data-series="{s}" data-value="{v}"><title>{full}, {s}: {v}</title></rect>"#,
                by = y + 20.0,
                c = COLOURS[k % COLOURS.len()],
                s = escape(series.get(k).map_or("", String::as_str)),
                full = escape(label),
            );
            x += w;
        }
        let text: Vec<String> = parts.iter().map(u64::to_string).collect();
        let _ = write!(
            out,
            r##"<text x="{vx:.1}" y="{vy:.1}" font-size="14" fill="#1f2937">{t}</text>"##,
            vx = span + 6.0,
            vy = y + 34.0,
            t = escape(&text.join(" / ")),
        );
    }
    (top + row * categories.len() as f64 + 4.0, out)
}

/// Lines over periods: a y axis from 0 to the highest value, the first and
/// last periods named under the x axis.
fn lines(periods: &[String], series: &[String], values: &[Vec<u64>]) -> (f64, String) {
    let mut out = String::new();
    if periods.is_empty() {
        let h = no_data(&mut out);
        return (h, out);
    }
    let top = legend(series, &mut out, true) + 8.0;
    let (left, right, plot_h) = (44.0, WIDTH - 8.0, 160.0);
    let bottom = top + plot_h;
    let max = values
        .iter()
        .flat_map(|v| v.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    // Axes and three grid lines with their values.
    for k in 0..=2u32 {
        let v = (max * f64::from(k) / 2.0).round();
        let y = bottom - plot_h * f64::from(k) / 2.0;
        let _ = write!(
            out,
            r##"<line x1="{left}" y1="{y:.1}" x2="{right}" y2="{y:.1}" stroke="#d1d5db" stroke-width="1"/><text x="{tx:.1}" y="{ty:.1}" font-size="14" fill="#1f2937" text-anchor="end">{v}</text>"##,
            tx = left - 6.0,
            ty = y + 5.0,
        );
    }
    let _ = write!(
        out,
        r##"<line x1="{left}" y1="{top:.1}" x2="{left}" y2="{bottom:.1}" stroke="#4b5563" stroke-width="1"/><line x1="{left}" y1="{bottom:.1}" x2="{right}" y2="{bottom:.1}" stroke="#4b5563" stroke-width="1"/>"##
    );
    let n = periods.len();
    let x_of = |i: usize| {
        if n == 1 {
            (left + right) / 2.0
        } else {
            left + (right - left) * i as f64 / (n - 1) as f64
        }
    };
    for (k, line) in values.iter().enumerate() {
        let c = COLOURS[k % COLOURS.len()];
        let dash = if k == 0 {
            ""
        } else {
            r#" stroke-dasharray="6 4""#
        };
        let points: Vec<String> = line
            .iter()
            .enumerate()
            .map(|(i, &v)| format!("{:.1},{:.1}", x_of(i), bottom - plot_h * v as f64 / max))
            .collect();
        let _ = write!(
            out,
            r#"<polyline points="{}" fill="none" stroke="{c}" stroke-width="3"{dash}/>"#,
            points.join(" ")
        );
        // The last point of each line, with its value: the totals.
        if let Some(&last) = line.last() {
            let _ = write!(
                out,
                r#"<circle class="point" cx="{:.1}" cy="{:.1}" r="4" fill="{c}" data-series="{}" data-value="{last}"><title>{}: {last}</title></circle>"#,
                x_of(n - 1),
                bottom - plot_h * last as f64 / max,
                escape(series.get(k).map_or("", String::as_str)),
                escape(series.get(k).map_or("", String::as_str)),
            );
        }
    }
    let first = escape(&shorten(&periods[0], 24));
    let last = escape(&shorten(&periods[n - 1], 24));
    let _ = write!(
        out,
        r##"<text x="{left}" y="{ly:.1}" font-size="14" fill="#1f2937">{first}</text>"##,
        ly = bottom + 20.0
    );
    if n > 1 {
        let _ = write!(
            out,
            r##"<text x="{right}" y="{ly:.1}" font-size="14" fill="#1f2937" text-anchor="end">{last}</text>"##,
            ly = bottom + 38.0
        );
    }
    (bottom + 46.0, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use exhaust_core::summary::DataTable;

    fn figure(chart: Chart) -> Figure {
        Figure {
            id: "f".into(),
            title: "Title <b>".into(),
            description: "What & why".into(),
            chart,
            table: DataTable {
                columns: vec![],
                numeric: vec![],
                rows: vec![],
            },
        }
    }

    /// The `data-value`s of the drawn bars or points, in order.
    fn values(svg: &str) -> Vec<u64> {
        svg.split("data-value=\"")
            .skip(1)
            .filter_map(|s| s.split('"').next()?.parse().ok())
            .collect()
    }

    #[test]
    fn bars_draw_each_value_with_its_label_and_an_accessible_name() {
        let svg = render(
            &figure(Chart::Bars {
                categories: vec!["A & B".into(), "x".repeat(80)],
                values: vec![3, 0],
            }),
            "fig-1",
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains(r#"role="img""#));
        assert!(svg.contains(r#"aria-labelledby="fig-1-title fig-1-desc""#));
        assert!(svg.contains("<title id=\"fig-1-title\">Title &lt;b&gt;</title>"));
        assert!(svg.contains("<desc id=\"fig-1-desc\">What &amp; why</desc>"));
        assert_eq!(values(&svg), [3, 0]);
        assert!(svg.contains("A &amp; B"));
        // A long label is shortened on the picture, whole in the bar's title.
        assert!(svg.contains(&format!("{}…", "x".repeat(LABEL_CHARS - 1))));
        assert!(svg.contains(&format!("{}: 0", "x".repeat(80))));
    }

    #[test]
    fn stacked_bars_and_lines_carry_their_numbers() {
        let svg = render(
            &figure(Chart::Stacked {
                categories: vec!["U1".into(), "U2".into()],
                series: vec![
                    "Completed".into(),
                    "In progress".into(),
                    "Not started".into(),
                ],
                values: vec![vec![4, 1, 1], vec![0, 0, 6]],
            }),
            "s",
        );
        assert_eq!(values(&svg), [4, 1, 1, 0, 0, 6]);
        assert!(svg.contains("4 / 1 / 1") && svg.contains("2. U2"));
        let svg = render(
            &figure(Chart::Lines {
                periods: vec!["2024-01-01".into(), "2024-01-02".into()],
                series: vec!["Enrolled so far".into(), "Completed so far".into()],
                values: vec![vec![2, 5], vec![0, 1]],
            }),
            "l",
        );
        assert_eq!(values(&svg), [5, 1], "each line's last total");
        assert!(svg.contains("2024-01-01") && svg.contains("2024-01-02"));
        assert!(
            svg.contains("stroke-dasharray"),
            "the second line is dashed"
        );
    }

    #[test]
    fn empty_charts_say_so() {
        for chart in [
            Chart::Bars {
                categories: vec![],
                values: vec![],
            },
            Chart::Stacked {
                categories: vec![],
                series: vec![],
                values: vec![],
            },
            Chart::Lines {
                periods: vec![],
                series: vec![],
                values: vec![],
            },
        ] {
            assert!(render(&figure(chart), "e").contains("No data to draw."));
        }
    }
}
