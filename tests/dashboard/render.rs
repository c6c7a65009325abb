//! The shipped Grafana dashboard drawn as an SVG, by hand, from query results: each panel where
//! its `gridPos` puts it on Grafana's 24-column grid, with its title, type, unit, min/max,
//! legend (a table on the right with the last value, as the dashboard declares) and, for the
//! stat panel, its thresholds' colours. Each panel's group carries its id, type, unit and every
//! target's refId, legendFormat and expr as data attributes, which tests/dashboard_image.rs
//! checks against the dashboard JSON, so the image cannot drift from the dashboard unnoticed.

use std::fmt::Write;

/// One series of a target's result: its legend name and (Unix seconds, value) points.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

pub struct Target {
    pub ref_id: String,
    pub expr: String,
    pub legend_format: String,
    pub series: Vec<Series>,
}

pub struct Panel {
    pub id: u64,
    pub kind: String,
    pub title: String,
    pub unit: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub decimals: Option<usize>,
    /// Stat thresholds: (from, colour name), the first from -inf.
    pub thresholds: Vec<(Option<f64>, String)>,
    /// x, y, w, h on Grafana's grid.
    pub grid: (f64, f64, f64, f64),
    pub targets: Vec<Target>,
}

pub struct Dashboard {
    pub title: String,
    /// The dashboard's variables as set: (label, value).
    pub variables: Vec<(String, String)>,
    /// The lines under the variables: what the data is.
    pub caption: Vec<String>,
    pub start: f64,
    pub end: f64,
    pub panels: Vec<Panel>,
}

const WIDTH: f64 = 1200.0;
const PAD: f64 = 12.0;
const HEADER: f64 = 104.0;
/// Grafana's grid: 24 columns, rows of 30 px, 8 px between panels.
const ROW: f64 = 30.0;
const GAP: f64 = 8.0;
const BACKGROUND: &str = "#111217";
const PANEL: &str = "#181b1f";
const BORDER: &str = "#2c3235";
const TEXT: &str = "#ccccdc";
const MUTED: &str = "#8e8e99";
const GRID: &str = "#2c3235";
/// Grafana's classic palette, in its order.
const PALETTE: [&str; 7] = [
    "#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9",
];

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\n', "&#10;")
}

fn colour(name: &str) -> &str {
    match name {
        "green" => "#73bf69",
        "red" => "#f2495c",
        "yellow" => "#fade2a",
        "orange" => "#ff9830",
        "blue" => "#5794f2",
        other => other,
    }
}

/// A value as Grafana shows it in `unit`.
pub fn format(v: f64, unit: &str, decimals: Option<usize>) -> String {
    if v.is_nan() {
        return "-".into();
    }
    // Grafana's automatic decimals: about three significant digits, at most `most`, no
    // trailing zeros; the panel's own `decimals` when it sets them.
    let num = |x: f64, most: usize| match decimals {
        Some(d) => format!("{x:.d$}"),
        None => {
            let d = if x == 0.0 {
                0
            } else {
                (2 - x.abs().log10().floor() as i64).clamp(0, most as i64) as usize
            };
            let s = format!("{x:.d$}");
            if s.contains('.') {
                s.trim_end_matches('0').trim_end_matches('.').to_string()
            } else {
                s
            }
        }
    };
    match unit {
        "percentunit" => format!("{}%", num(v * 100.0, 1)),
        "percent" => format!("{}%", num(v, 1)),
        "ms" => format!("{} ms", num(v, 1)),
        "reqps" => format!("{} req/s", num(v, 2)),
        _ => num(v, 2),
    }
}

/// A tick step of 1, 2, 2.5 or 5 times a power of ten, at least `v`.
fn nice_step(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 0.25;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= v)
        .unwrap_or(10.0 * magnitude)
}

fn clock(t: f64) -> String {
    let s = t as u64 % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn text(out: &mut String, x: f64, y: f64, attrs: &str, body: &str) {
    writeln!(
        out,
        r#"<text x="{x:.1}" y="{y:.1}" {attrs}>{}</text>"#,
        escape(body)
    )
    .unwrap();
}

fn last_value(s: &Series) -> f64 {
    s.points
        .iter()
        .rev()
        .map(|(_, v)| *v)
        .find(|v| v.is_finite())
        .unwrap_or(f64::NAN)
}

fn timeseries(out: &mut String, d: &Dashboard, p: &Panel, (x, y, w, h): (f64, f64, f64, f64)) {
    let series: Vec<&Series> = p.targets.iter().flat_map(|t| t.series.iter()).collect();
    // Legend on the right, as a table: name and the last non-null value.
    let legend_w = (w * 0.42).min(260.0);
    let (left, right) = (x + 56.0, x + w - legend_w - 12.0);
    let (top, bottom) = (y + 40.0, y + h - 28.0);
    let data_max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|(_, v)| *v))
        .filter(|v| v.is_finite())
        .fold(f64::NEG_INFINITY, f64::max);
    let data_min = series
        .iter()
        .flat_map(|s| s.points.iter().map(|(_, v)| *v))
        .filter(|v| v.is_finite())
        .fold(f64::INFINITY, f64::min);
    let lo = p.min.unwrap_or(data_min.min(0.0));
    // Ticks: four between a written min and max; otherwise a nice step, up to the data's top.
    let (hi, step) = match p.max {
        Some(hi) => (hi, (hi - lo) / 4.0),
        None => {
            let step = nice_step((data_max - lo) / 4.0);
            (lo + ((data_max - lo) / step).ceil().max(1.0) * step, step)
        }
    };
    let sx = |t: f64| left + (t - d.start) / (d.end - d.start) * (right - left);
    let sy = |v: f64| bottom - (v.clamp(lo, hi) - lo) / (hi - lo) * (bottom - top);

    // Grid and axes.
    let ticks = ((hi - lo) / step).round() as usize;
    for i in 0..=ticks {
        let v = lo + step * i as f64;
        let gy = sy(v);
        writeln!(
            out,
            r#"<line x1="{left:.1}" y1="{gy:.1}" x2="{right:.1}" y2="{gy:.1}" stroke="{GRID}" stroke-width="1"/>"#
        )
        .unwrap();
        let shown = step * if p.unit == "percentunit" { 100.0 } else { 1.0 };
        let decimals = Some(if shown.fract().abs() < 1e-9 { 0 } else { 1 });
        text(
            out,
            left - 6.0,
            gy + 4.0,
            &format!(r#"text-anchor="end" font-size="11" fill="{MUTED}""#),
            &format(v, &p.unit, decimals),
        );
    }
    let span = d.end - d.start;
    let tick = [5.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0]
        .into_iter()
        .find(|t| span / t <= 6.0)
        .unwrap_or(600.0);
    let mut t = (d.start / tick).ceil() * tick;
    while t <= d.end {
        let gx = sx(t);
        writeln!(
            out,
            r#"<line x1="{gx:.1}" y1="{top:.1}" x2="{gx:.1}" y2="{bottom:.1}" stroke="{GRID}" stroke-width="1"/>"#
        )
        .unwrap();
        text(
            out,
            gx,
            bottom + 16.0,
            &format!(r#"text-anchor="middle" font-size="11" fill="{MUTED}""#),
            &clock(t),
        );
        t += tick;
    }

    // Series: a line per run of points with values, and Grafana's 10% fill under it.
    for (i, s) in series.iter().enumerate() {
        let c = PALETTE[i % PALETTE.len()];
        let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        for (t, v) in &s.points {
            if v.is_finite() {
                if let Some(run) = runs.last_mut() {
                    run.push((sx(*t), sy(*v)));
                }
            } else if runs.last().is_some_and(|r| !r.is_empty()) {
                runs.push(Vec::new());
            }
        }
        for run in runs.iter().filter(|r| !r.is_empty()) {
            let points: Vec<String> = run
                .iter()
                .map(|(px, py)| format!("{px:.1},{py:.1}"))
                .collect();
            let base = sy(lo.max(0.0).min(hi));
            let (first, last) = (run[0].0, run[run.len() - 1].0);
            writeln!(
                out,
                r#"<polygon fill="{c}" fill-opacity="0.1" stroke="none" points="{first:.1},{base:.1} {} {last:.1},{base:.1}"/>"#,
                points.join(" ")
            )
            .unwrap();
            writeln!(
                out,
                r#"<polyline fill="none" stroke="{c}" stroke-width="2" stroke-linejoin="round" points="{}"/>"#,
                points.join(" ")
            )
            .unwrap();
        }
    }

    // The legend table.
    let lx = x + w - legend_w;
    text(
        out,
        lx,
        y + 44.0,
        &format!(r#"font-size="11" fill="{MUTED}""#),
        "Name",
    );
    text(
        out,
        x + w - 12.0,
        y + 44.0,
        &format!(r#"text-anchor="end" font-size="11" fill="{MUTED}""#),
        "Last *",
    );
    for (i, s) in series.iter().enumerate() {
        let c = PALETTE[i % PALETTE.len()];
        let ly = y + 64.0 + i as f64 * 20.0;
        writeln!(
            out,
            r#"<rect x="{lx:.1}" y="{:.1}" width="14" height="4" rx="1" fill="{c}"/>"#,
            ly - 7.0
        )
        .unwrap();
        // What fits before the value column (about 6.5 px a character at 12 px).
        let room = ((legend_w - 20.0 - 60.0) / 6.5) as usize;
        let name: String = if s.name.chars().count() > room {
            s.name
                .chars()
                .take(room.saturating_sub(1))
                .collect::<String>()
                + "…"
        } else {
            s.name.clone()
        };
        text(
            out,
            lx + 20.0,
            ly,
            &format!(r#"font-size="12" fill="{TEXT}""#),
            &name,
        );
        text(
            out,
            x + w - 12.0,
            ly,
            &format!(r#"text-anchor="end" font-size="12" fill="{TEXT}""#),
            &format(last_value(s), &p.unit, p.decimals),
        );
    }
    if series.is_empty() {
        text(
            out,
            (left + right) / 2.0,
            (top + bottom) / 2.0,
            &format!(r#"text-anchor="middle" font-size="13" fill="{MUTED}""#),
            "No data",
        );
    }
}

fn stat(out: &mut String, p: &Panel, (x, y, w, h): (f64, f64, f64, f64)) {
    let series: Vec<&Series> = p.targets.iter().flat_map(|t| t.series.iter()).collect();
    let n = series.len().max(1) as f64;
    let (top, bottom) = (y + 36.0, y + h - 10.0);
    let box_w = (w - 20.0 - (n - 1.0) * 8.0) / n;
    for (i, s) in series.iter().enumerate() {
        let v = last_value(s);
        let c = p
            .thresholds
            .iter()
            .rev()
            .find(|(from, _)| from.is_none_or(|f| v >= f))
            .map_or(PALETTE[0], |(_, c)| colour(c));
        let bx = x + 10.0 + i as f64 * (box_w + 8.0);
        writeln!(
            out,
            r#"<rect x="{bx:.1}" y="{top:.1}" width="{box_w:.1}" height="{:.1}" rx="2" fill="{c}"/>"#,
            bottom - top
        )
        .unwrap();
        let cx = bx + box_w / 2.0;
        let mid = (top + bottom) / 2.0;
        text(
            out,
            cx,
            mid - 18.0,
            r##"text-anchor="middle" font-size="15" fill="#ffffff""##,
            &s.name,
        );
        text(
            out,
            cx,
            mid + 30.0,
            r##"text-anchor="middle" font-size="48" font-weight="500" fill="#ffffff""##,
            &format(v, &p.unit, p.decimals),
        );
    }
    if series.is_empty() {
        text(
            out,
            x + w / 2.0,
            (top + bottom) / 2.0,
            &format!(r#"text-anchor="middle" font-size="13" fill="{MUTED}""#),
            "No data",
        );
    }
}

pub fn render(d: &Dashboard) -> String {
    let col = (WIDTH - 2.0 * PAD + GAP) / 24.0;
    let rows = d
        .panels
        .iter()
        .map(|p| p.grid.1 + p.grid.3)
        .fold(0.0, f64::max);
    let height = HEADER + rows * ROW + PAD;
    let mut out = String::new();
    writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="Inter, Helvetica, Arial, sans-serif">"#
    )
    .unwrap();
    writeln!(
        out,
        r#"<rect width="{WIDTH}" height="{height:.0}" fill="{BACKGROUND}"/>"#
    )
    .unwrap();
    text(
        &mut out,
        PAD,
        28.0,
        &format!(
            r#"font-size="18" font-weight="500" fill="{TEXT}" data-dashboard-title="{}""#,
            escape(&d.title)
        ),
        &d.title,
    );
    // The variables, as Grafana's pickers show them.
    let mut vx = PAD;
    for (label, value) in &d.variables {
        let lw = 14.0 + label.chars().count() as f64 * 7.0;
        let vw = 24.0 + value.chars().count() as f64 * 7.5;
        writeln!(
            out,
            r#"<rect x="{vx:.1}" y="40" width="{lw:.1}" height="24" rx="2" fill="{PANEL}" stroke="{BORDER}"/><rect x="{:.1}" y="40" width="{vw:.1}" height="24" rx="2" fill="{BACKGROUND}" stroke="{BORDER}"/>"#,
            vx + lw
        )
        .unwrap();
        text(
            &mut out,
            vx + 7.0,
            56.0,
            &format!(r#"font-size="12" fill="{TEXT}""#),
            label,
        );
        text(
            &mut out,
            vx + lw + 8.0,
            56.0,
            &format!(r#"font-size="12" fill="{TEXT}""#),
            &format!("{value} ▾"),
        );
        vx += lw + vw + 10.0;
    }
    for (i, line) in d.caption.iter().enumerate() {
        text(
            &mut out,
            PAD,
            80.0 + i as f64 * 15.0,
            &format!(r#"font-size="11.5" fill="{MUTED}""#),
            line,
        );
    }
    for p in &d.panels {
        let (gx, gy, gw, gh) = p.grid;
        let (x, y) = (PAD + gx * col, HEADER + gy * ROW);
        let (w, h) = (gw * col - GAP, gh * ROW - GAP);
        writeln!(
            out,
            r#"<g data-panel-id="{}" data-panel-type="{}" data-unit="{}">"#,
            p.id,
            escape(&p.kind),
            escape(&p.unit)
        )
        .unwrap();
        for t in &p.targets {
            writeln!(
                out,
                r#"<desc data-ref="{}" data-legend-format="{}" data-expr="{}"/>"#,
                escape(&t.ref_id),
                escape(&t.legend_format),
                escape(&t.expr)
            )
            .unwrap();
        }
        writeln!(
            out,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" rx="2" fill="{PANEL}" stroke="{BORDER}"/>"#
        )
        .unwrap();
        text(
            &mut out,
            x + 10.0,
            y + 22.0,
            &format!(r#"font-size="14" font-weight="500" fill="{TEXT}" class="panel-title""#),
            &p.title,
        );
        match p.kind.as_str() {
            "stat" => stat(&mut out, p, (x, y, w, h)),
            _ => timeseries(&mut out, d, p, (x, y, w, h)),
        }
        writeln!(out, "</g>").unwrap();
    }
    writeln!(out, "</svg>").unwrap();
    out
}
