//! Charts as self-contained SVG — no script, no font or anything else from a network, so a
//! report opens the same offline, printed or with JavaScript off. Two kinds: points (with
//! interval bars, optional lines and horizontal reference lines such as an SLA) and grouped
//! bars. Axes carry ticks, labels and units; colours are the Okabe–Ito palette (safe for
//! the common colour-vision deficiencies) and every series also has its own marker shape,
//! so colour is never the only cue. Each point has a `<title>` (a tooltip without script).
//! Hand-built rather than a plotting crate: the charts are few and small, the output must be
//! byte-stable for snapshot tests, and the page must carry no web font.

use std::fmt::Write as _;

/// Okabe–Ito: blue, orange, bluish green, vermillion, reddish purple, sky blue, black.
pub const PALETTE: [&str; 7] = [
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000",
];

/// A point marker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Marker {
    /// ●
    Circle,
    /// ■
    Square,
    /// ▲
    Triangle,
    /// ◆
    Diamond,
    /// ✕
    Cross,
}

/// One point, with an optional interval around it and its tooltip.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Horizontal position.
    pub x: f64,
    /// Vertical position.
    pub y: f64,
    /// The interval (low, high) drawn as a bar, if any.
    pub interval: Option<(f64, f64)>,
    /// Tooltip.
    pub title: String,
}

/// A named set of points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend name.
    pub name: String,
    /// Colour (one of [`PALETTE`]).
    pub color: &'static str,
    /// Marker.
    pub marker: Marker,
    /// Join the points with a line (in x order).
    pub line: bool,
    /// The points.
    pub points: Vec<Point>,
}

/// A reference line (a threshold, an SLA bound, zero): horizontal at a y value, or
/// vertical at an x value.
#[derive(Debug, Clone, PartialEq)]
pub struct RefLine {
    /// Where, on the axis it crosses.
    pub at: f64,
    /// What it is.
    pub label: String,
    /// Vertical (at an x value) rather than horizontal.
    pub vertical: bool,
}

impl RefLine {
    /// A horizontal line at `y`.
    pub fn y(y: f64, label: impl Into<String>) -> RefLine {
        RefLine {
            at: y,
            label: label.into(),
            vertical: false,
        }
    }

    /// A vertical line at `x`.
    pub fn x(x: f64, label: impl Into<String>) -> RefLine {
        RefLine {
            at: x,
            label: label.into(),
            vertical: true,
        }
    }
}

/// A chart of points.
#[derive(Debug, Clone, PartialEq)]
pub struct Scatter {
    /// Title (also the SVG's accessible name).
    pub title: String,
    /// Horizontal axis label, with its unit.
    pub x_label: String,
    /// Vertical axis label, with its unit.
    pub y_label: String,
    /// The series.
    pub series: Vec<Series>,
    /// Reference lines.
    pub lines: Vec<RefLine>,
}

/// Grouped bars: one group per category, one bar per series in each.
#[derive(Debug, Clone, PartialEq)]
pub struct Bars {
    /// Title.
    pub title: String,
    /// Horizontal axis label (what the categories are), with its unit.
    pub x_label: String,
    /// Vertical axis label, with its unit.
    pub y_label: String,
    /// Category names.
    pub groups: Vec<String>,
    /// (series name, colour, one value per group).
    pub series: Vec<(String, &'static str, Vec<f64>)>,
}

const W: f64 = 640.0;
const H: f64 = 360.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 84.0;

/// Escape text for XML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// About `n` round tick values covering `lo..=hi`.
pub fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let span = (hi - lo).abs().max(1e-9);
    let raw = span / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).floor() * step;
    (0..=n + 2)
        .map(|i| first + i as f64 * step)
        .filter(|t| *t >= lo - step * 1e-9 && *t <= hi + step * 1e-9)
        .collect()
}

/// A number as an axis or bar label: whole numbers bare, else one or two decimals.
pub fn label(v: f64) -> String {
    if v.abs() >= 1000.0 || v == v.round() {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The axis range of `values`, padded, with zero kept when it is near.
fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if lo > 0.0 && lo < 0.5 * hi {
        lo = 0.0;
    }
    if (hi - lo).abs() < 1e-9 {
        hi = lo + 1.0;
    }
    let pad = (hi - lo) * 0.06;
    (if lo == 0.0 { 0.0 } else { lo - pad }, hi + pad)
}

struct Frame {
    x: (f64, f64),
    y: (f64, f64),
}

impl Frame {
    fn px(&self, x: f64) -> f64 {
        LEFT + (x - self.x.0) / (self.x.1 - self.x.0) * (W - LEFT - RIGHT)
    }
    fn py(&self, y: f64) -> f64 {
        TOP + (self.y.1 - y) / (self.y.1 - self.y.0) * (H - TOP - BOTTOM)
    }
}

/// The title's font size: 15 px, smaller for a title too long to fit beside the y axis at
/// that size (about 0.6 em a character, bold), never under 10 px.
fn title_size(title: &str) -> f64 {
    let room = W - LEFT - RIGHT;
    let wide = 15.0 * 0.6 * title.chars().count() as f64;
    if wide <= room {
        15.0
    } else {
        (15.0 * room / wide).max(10.0).floor()
    }
}

fn open(out: &mut String, kind: &str, title: &str) {
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" class="chart {kind}" aria-label="{t}"><title>{t}</title><rect x="0" y="0" width="{W}" height="{H}" fill="#ffffff"/><text class="title" x="{LEFT}" y="22" font-size="{size}" font-weight="600">{t}</text>"##,
        t = esc(title),
        size = title_size(title)
    );
}

/// Axes: the frame, y ticks with grid lines, the axis labels. `x_ticks` are (value, text).
fn axes(out: &mut String, f: &Frame, x_ticks: &[(f64, String)], x_label: &str, y_label: &str) {
    let (x0, x1, y0, y1) = (LEFT, W - RIGHT, TOP, H - BOTTOM);
    let _ = write!(
        out,
        r##"<g class="axes" font-size="12" fill="#333333"><line x1="{x0}" y1="{y1}" x2="{x1}" y2="{y1}" stroke="#333333"/><line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#333333"/>"##
    );
    for t in ticks(f.y.0, f.y.1, 6) {
        let y = f.py(t);
        let _ = write!(
            out,
            r##"<line x1="{x0}" y1="{y:.1}" x2="{x1}" y2="{y:.1}" stroke="#dddddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            x0 - 6.0,
            y + 4.0,
            label(t)
        );
    }
    for (v, text) in x_ticks {
        let x = f.px(*v);
        let _ = write!(
            out,
            r##"<line x1="{x:.1}" y1="{y1}" x2="{x:.1}" y2="{:.1}" stroke="#333333"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            y1 + 5.0,
            y1 + 19.0,
            esc(text)
        );
    }
    let _ = write!(
        out,
        r#"<text class="x-label" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text class="y-label" transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">{}</text></g>"#,
        (x0 + x1) / 2.0,
        y1 + 40.0,
        esc(x_label),
        (y0 + y1) / 2.0,
        esc(y_label)
    );
}

fn marker(out: &mut String, m: Marker, x: f64, y: f64, color: &str) {
    let _ = match m {
        Marker::Circle => write!(
            out,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="5" fill="{color}"/>"#
        ),
        Marker::Square => write!(
            out,
            r#"<rect x="{:.1}" y="{:.1}" width="9" height="9" fill="{color}"/>"#,
            x - 4.5,
            y - 4.5
        ),
        Marker::Triangle => write!(
            out,
            r#"<polygon points="{x:.1},{:.1} {:.1},{:.1} {:.1},{:.1}" fill="{color}"/>"#,
            y - 6.0,
            x - 5.5,
            y + 4.5,
            x + 5.5,
            y + 4.5
        ),
        Marker::Diamond => write!(
            out,
            r#"<polygon points="{x:.1},{:.1} {:.1},{y:.1} {x:.1},{:.1} {:.1},{y:.1}" fill="{color}"/>"#,
            y - 6.0,
            x + 6.0,
            y + 6.0,
            x - 6.0
        ),
        Marker::Cross => write!(
            out,
            r#"<path d="M{:.1} {:.1}L{:.1} {:.1}M{:.1} {:.1}L{:.1} {:.1}" stroke="{color}" stroke-width="2.5"/>"#,
            x - 5.0,
            y - 5.0,
            x + 5.0,
            y + 5.0,
            x - 5.0,
            y + 5.0,
            x + 5.0,
            y - 5.0
        ),
    };
}

fn legend(out: &mut String, entries: &[(&str, &str, Option<Marker>)]) {
    let width = |name: &str| 24.0 + 7.0 * name.chars().count() as f64;
    // Entries wrap onto a second row when one row would run past the plot's right edge.
    let mut rows = 1;
    let mut x = LEFT;
    for (name, _, _) in entries {
        if x > LEFT && x + width(name) > W - RIGHT {
            rows += 1;
            x = LEFT;
        }
        x += width(name);
    }
    let mut x = LEFT;
    let mut y = H - 14.0 - 16.0 * f64::from(rows.min(2) - 1);
    out.push_str(r#"<g class="legend" font-size="12">"#);
    for (name, color, m) in entries {
        if x > LEFT && x + width(name) > W - RIGHT {
            x = LEFT;
            y += 16.0;
        }
        match m {
            Some(m) => marker(out, *m, x + 5.0, y - 4.0, color),
            None => {
                let _ = write!(
                    out,
                    r#"<rect x="{x:.1}" y="{:.1}" width="10" height="10" fill="{color}"/>"#,
                    y - 9.0
                );
            }
        }
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{y:.1}">{}</text>"#,
            x + 14.0,
            esc(name)
        );
        x += width(name);
    }
    out.push_str("</g>");
}

impl Scatter {
    /// Whether there is anything to draw.
    pub fn is_empty(&self) -> bool {
        self.series.iter().all(|s| s.points.is_empty())
    }

    /// The SVG. Integer x values get one tick each (experiment numbers).
    pub fn render(&self) -> String {
        let pts = || self.series.iter().flat_map(|s| s.points.iter());
        let at = |vertical: bool| {
            self.lines
                .iter()
                .filter(move |l| l.vertical == vertical)
                .map(|l| l.at)
        };
        let xs = range(pts().map(|p| p.x).chain(at(true)));
        let ys = range(
            pts()
                .flat_map(|p| {
                    let (lo, hi) = p.interval.unwrap_or((p.y, p.y));
                    [p.y, lo, hi]
                })
                .chain(at(false)),
        );
        let f = Frame { x: xs, y: ys };
        let mut out = String::new();
        open(&mut out, "scatter", &self.title);
        // Whole-number x values (experiments, rounds) get whole-number ticks only.
        let whole = pts().all(|p| p.x.fract() == 0.0);
        let x_ticks: Vec<(f64, String)> = ticks(xs.0, xs.1, 8)
            .into_iter()
            .filter(|t| !whole || t.fract() == 0.0)
            .map(|t| (t, label(t)))
            .collect();
        axes(&mut out, &f, &x_ticks, &self.x_label, &self.y_label);
        for l in self.lines.iter().filter(|l| l.vertical) {
            let x = f.px(l.at);
            // The label inside the plot, on the side with more room.
            let (tx, anchor) = if x > W / 2.0 {
                (x - 4.0, "end")
            } else {
                (x + 4.0, "start")
            };
            let _ = write!(
                out,
                r##"<g class="refline"><line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#555555" stroke-dasharray="6 4"/><text x="{tx:.1}" y="{:.1}" font-size="11" text-anchor="{anchor}" fill="#555555">{}</text></g>"##,
                H - BOTTOM,
                TOP + 12.0,
                esc(&l.label)
            );
        }
        for (i, l) in self.lines.iter().filter(|l| !l.vertical).enumerate() {
            let y = f.py(l.at);
            // Alternate labels above and below their lines, so two close lines stay legible.
            let ty = if i % 2 == 0 { y - 5.0 } else { y + 14.0 };
            let _ = write!(
                out,
                r##"<g class="refline"><line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#555555" stroke-dasharray="6 4"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end" fill="#555555">{}</text></g>"##,
                W - RIGHT,
                W - RIGHT - 4.0,
                ty,
                esc(&l.label)
            );
        }
        for s in &self.series {
            self.series_svg(&mut out, &f, s);
        }
        let entries: Vec<(&str, &str, Option<Marker>)> = self
            .series
            .iter()
            .filter(|s| !s.points.is_empty())
            .map(|s| (s.name.as_str(), s.color, Some(s.marker)))
            .collect();
        legend(&mut out, &entries);
        out.push_str("</svg>");
        out
    }

    fn series_svg(&self, out: &mut String, f: &Frame, s: &Series) {
        let _ = write!(out, r#"<g class="series" data-name="{}">"#, esc(&s.name));
        if s.line && s.points.len() > 1 {
            let mut pts = s.points.clone();
            pts.sort_by(|a, b| a.x.total_cmp(&b.x));
            let path: Vec<String> = pts
                .iter()
                .map(|p| format!("{:.1},{:.1}", f.px(p.x), f.py(p.y)))
                .collect();
            let _ = write!(
                out,
                r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>"#,
                path.join(" "),
                s.color
            );
        }
        for p in &s.points {
            let (x, y) = (f.px(p.x), f.py(p.y));
            let _ = write!(out, r#"<g class="point"><title>{}</title>"#, esc(&p.title));
            if let Some((lo, hi)) = p.interval {
                let _ = write!(
                    out,
                    r#"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="{}" stroke-width="1.5"/>"#,
                    f.py(lo),
                    f.py(hi),
                    s.color
                );
            }
            marker(out, s.marker, x, y, s.color);
            out.push_str("</g>");
        }
        out.push_str("</g>");
    }
}

impl Bars {
    /// The SVG.
    pub fn render(&self) -> String {
        let ys = range(
            self.series
                .iter()
                .flat_map(|s| s.2.iter().copied())
                .chain([0.0]),
        );
        let n = self.groups.len().max(1) as f64;
        let f = Frame { x: (0.0, n), y: ys };
        let mut out = String::new();
        open(&mut out, "bars", &self.title);
        let x_ticks: Vec<(f64, String)> = self
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| (i as f64 + 0.5, g.clone()))
            .collect();
        axes(&mut out, &f, &x_ticks, &self.x_label, &self.y_label);
        let k = self.series.len().max(1) as f64;
        let group_w = f.px(1.0) - f.px(0.0);
        let bar_w = group_w * 0.7 / k;
        for (si, (name, color, values)) in self.series.iter().enumerate() {
            let _ = write!(out, r#"<g class="series" data-name="{}">"#, esc(name));
            for (gi, v) in values.iter().enumerate() {
                let x = f.px(gi as f64) + group_w * 0.15 + si as f64 * bar_w;
                let (top, base) = (f.py(v.max(0.0)), f.py(0.0));
                let _ = write!(
                    out,
                    r#"<rect x="{x:.1}" y="{top:.1}" width="{bar_w:.1}" height="{:.1}" fill="{color}"><title>{}: {} {}</title></rect>"#,
                    (base - top).max(0.0),
                    esc(name),
                    esc(self.groups.get(gi).map_or("", String::as_str)),
                    label(*v)
                );
            }
            out.push_str("</g>");
        }
        let entries: Vec<(&str, &str, Option<Marker>)> = self
            .series
            .iter()
            .map(|(n, c, _)| (n.as_str(), *c, None))
            .collect();
        legend(&mut out, &entries);
        out.push_str("</svg>");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 10.0, 5), [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(ticks(-3.0, 41.0, 5), [0.0, 10.0, 20.0, 30.0, 40.0]);
        let t = ticks(233.0, 341.0, 5);
        assert!(
            t.iter().all(|v| (233.0..=341.0).contains(v)) && t.len() >= 4,
            "{t:?}"
        );
    }

    #[test]
    fn text_is_escaped_and_nothing_is_fetched() {
        let c = Scatter {
            title: "a <b> & \"c\"".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            series: vec![Series {
                name: "s".into(),
                color: PALETTE[0],
                marker: Marker::Circle,
                line: false,
                points: vec![Point {
                    x: 1.0,
                    y: 2.0,
                    interval: Some((1.0, 3.0)),
                    title: "<script>".into(),
                }],
            }],
            lines: vec![],
        };
        let svg = c.render();
        assert!(svg.contains("a &lt;b&gt; &amp; &quot;c&quot;"));
        assert!(!svg.contains("<script>"));
        assert!(!svg.contains("href") && !svg.contains("url("));
    }
}
