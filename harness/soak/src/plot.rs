//! The samples as an SVG plot: one panel per quantity, stacked on a shared time axis,
//! with the fault phases shaded behind them. Written by hand (a few lines of SVG)
//! rather than with a plotting crate: the soak needs lines, bands and labels, and a
//! file any browser opens.

use super::sample::Sample;
use std::fmt::Write as _;

const WIDTH: f64 = 960.0;
const PANEL: f64 = 150.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const GAP: f64 = 40.0;
const COLOURS: [&str; 3] = ["#1f77b4", "#d62728", "#2ca02c"];

/// A quantity of a sample, already in the panel's unit.
type Value = fn(&Sample) -> Option<f64>;

/// One panel: its title, its lines (label and value), and which bound it draws
/// dashed, if any.
struct Panel {
    title: &'static str,
    lines: &'static [(&'static str, Value)],
    bound: Option<Bound>,
}

#[derive(Clone, Copy)]
enum Bound {
    Keys,
    Bytes,
}

const MIB: f64 = 1024.0 * 1024.0;

fn count(v: u64) -> Option<f64> {
    Some(v as f64)
}

const PANELS: [Panel; 6] = [
    Panel {
        title: "filter VM linear memory, MiB (all VMs)",
        lines: &[("vm_memory", |s| {
            s.proxy.vm_memory_bytes.map(|v| v as f64 / MIB)
        })],
        bound: None,
    },
    Panel {
        title: "Envoy memory, MiB",
        lines: &[
            ("RSS", |s| Some(s.proxy.envoy_rss_bytes as f64 / MIB)),
            ("heap (allocated)", |s| {
                Some(s.proxy.envoy_heap_bytes as f64 / MIB)
            }),
        ],
        bound: None,
    },
    Panel {
        title: "shared-data keys (dashed: the configuration's bound)",
        lines: &[("keys", |s| s.proxy.shared_keys.and_then(count))],
        bound: Some(Bound::Keys),
    },
    Panel {
        title: "shared-data bytes (dashed: the configuration's bound)",
        lines: &[("bytes", |s| s.proxy.shared_bytes.and_then(count))],
        bound: Some(Bound::Bytes),
    },
    Panel {
        title: "upstream addresses",
        lines: &[
            ("distinct seen", |s| count(s.addresses_seen)),
            ("hosts in Envoy", |s| count(s.proxy.envoy_upstream_hosts)),
        ],
        bound: None,
    },
    Panel {
        title: "requests (cumulative)",
        lines: &[
            ("sent", |s| count(s.requests_sent)),
            ("upstream attempts", |s| count(s.upstream_attempts)),
            ("failed fast", |s| count(s.proxy.fail_fast)),
        ],
        bound: None,
    },
];

/// The plot of a run; `bound` is the configuration's shared-data bound (keys, bytes).
pub fn svg(samples: &[Sample], bound: (u64, u64)) -> String {
    let panels = &PANELS;
    let end = samples
        .iter()
        .map(|s| s.elapsed.as_secs_f64())
        .fold(1.0, f64::max);
    let height = TOP + panels.len() as f64 * (PANEL + GAP);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        out,
        r#"<rect width="{WIDTH}" height="{height}" fill="white"/><text x="{LEFT}" y="20" font-size="14">c4mesh soak: {} samples over {end:.0} s; shaded: the fault phases</text>"#,
        samples.len()
    );
    let x_of = |t: f64| LEFT + t / end * (WIDTH - LEFT - RIGHT);
    for (n, panel) in panels.iter().enumerate() {
        let top = TOP + n as f64 * (PANEL + GAP) + 15.0;
        bands(&mut out, samples, top, &x_of, n == 0);
        let bound = panel.bound.map(|b| match b {
            Bound::Keys => bound.0 as f64,
            Bound::Bytes => bound.1 as f64,
        });
        draw_panel(&mut out, samples, panel, bound, top, end, &x_of);
    }
    out.push_str("</svg>\n");
    out
}

/// Alternate shading per phase; with `label`, the fault's name where it fits.
fn bands(out: &mut String, samples: &[Sample], top: f64, x_of: &impl Fn(f64) -> f64, label: bool) {
    let mut start = 0;
    for i in 1..=samples.len() {
        if i < samples.len() && samples[i].phase == samples[start].phase {
            continue;
        }
        let from = x_of(samples[start].elapsed.as_secs_f64());
        let to = x_of(samples[i - 1].elapsed.as_secs_f64());
        if samples[start].phase % 2 == 1 {
            let _ = writeln!(
                out,
                r##"<rect x="{from:.1}" y="{top:.1}" width="{:.1}" height="{PANEL}" fill="#eeeeee"/>"##,
                (to - from).max(1.0)
            );
        }
        if label && to - from >= 40.0 {
            let _ = writeln!(
                out,
                r##"<text x="{:.1}" y="{:.1}" fill="#777" font-size="9">{}</text>"##,
                from + 2.0,
                top + PANEL - 4.0,
                samples[start].fault
            );
        }
        start = i;
    }
}

fn draw_panel(
    out: &mut String,
    samples: &[Sample],
    panel: &Panel,
    bound: Option<f64>,
    top: f64,
    end: f64,
    x_of: &impl Fn(f64) -> f64,
) {
    let lines: Vec<(&str, Vec<(f64, f64)>)> = panel
        .lines
        .iter()
        .map(|(label, value)| {
            let points = samples
                .iter()
                .filter_map(|s| Some((s.elapsed.as_secs_f64(), value(s)?)))
                .collect();
            (*label, points)
        })
        .collect();
    let values = lines
        .iter()
        .flat_map(|(_, points)| points.iter().map(|p| p.1))
        .chain(bound);
    let high = values.fold(0.0, f64::max).max(1e-9) * 1.1;
    let y_of = |v: f64| top + PANEL - v / high * PANEL;
    let _ = writeln!(
        out,
        r##"<text x="{LEFT}" y="{:.1}" font-weight="bold">{}</text><rect x="{LEFT}" y="{top:.1}" width="{:.1}" height="{PANEL}" fill="none" stroke="#999"/>"##,
        top - 4.0,
        panel.title,
        WIDTH - LEFT - RIGHT
    );
    for (value, anchor) in [(0.0, top + PANEL), (high / 1.1, y_of(high / 1.1))] {
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 4.0,
            anchor + 4.0,
            compact(value)
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{end:.0} s</text>"#,
        WIDTH - RIGHT,
        top + PANEL + 12.0
    );
    if let Some(bound) = bound {
        let y = y_of(bound);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#555" stroke-dasharray="5,4"/>"##,
            WIDTH - RIGHT
        );
    }
    for (i, (label, points)) in lines.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<String> = points
            .iter()
            .map(|&(t, v)| format!("{:.1},{:.1}", x_of(t), y_of(v)))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/><text x="{:.1}" y="{:.1}" fill="{colour}" text-anchor="end">{}</text>"#,
            points.join(" "),
            WIDTH - RIGHT - 4.0,
            top + 12.0 + 12.0 * i as f64,
            label
        );
    }
}

/// A value for an axis label: whole numbers as they are, others with two decimals.
fn compact(value: f64) -> String {
    if value >= 100.0 || value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}
