//! The timeline drawn as an SVG, written by hand: two panels on one time axis. Above, who
//! answered (share per subset) and the canary's effective weight; below, the canary's 5xx rate;
//! the ramp's steps shaded, the failure and the trip marked.

use std::fmt::Write;

/// One interval of the timeline; percentages, None where there is nothing to divide by.
pub struct Point {
    /// The interval's end, in seconds.
    pub t: f64,
    pub stable: Option<f64>,
    pub canary: Option<f64>,
    pub guardrail: Option<f64>,
    pub errors: Option<f64>,
    /// Envoy's gauge at the interval's end.
    pub weight: Option<f64>,
}

pub struct Chart {
    pub points: Vec<Point>,
    /// The intervals' length, in seconds.
    pub interval: f64,
    pub end: f64,
    /// The ramp's steps: when each begins, and its weight.
    pub steps: Vec<(f64, f64)>,
    /// The canary's written share, before the ramp starts.
    pub written: f64,
    /// The canary's first 500, the trip, the last request to reach the canary.
    pub failed: f64,
    pub tripped: f64,
    pub last_canary: f64,
    /// The guard's error threshold, in points above stable's rate, and its window.
    pub threshold: f64,
    pub window: String,
    /// What the load was, for the axis' caption.
    pub load: String,
}

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 560.0;
const LEFT: f64 = 78.0;
const RIGHT: f64 = 870.0;
/// Top and bottom of each panel.
const SHARE: (f64, f64) = (104.0, 334.0);
const ERRORS: (f64, f64) = (384.0, 484.0);
/// Room above 100% in the upper panel, for the ramp's step labels.
const HEADROOM: f64 = 22.0;

const STABLE: &str = "#1f77b4";
const CANARY: &str = "#ff7f0e";
const ERROR: &str = "#d62728";
const WEIGHT: &str = "#7f3c00";
const GRID: &str = "#dddddd";
const MUTED: &str = "#555555";

fn f(v: f64) -> String {
    format!("{v:.1}")
}

/// A polyline per run of points that have a value (a gap where they have none).
fn series(
    out: &mut String,
    points: &[(f64, Option<f64>)],
    style: &str,
    x: impl Fn(f64) -> f64,
    y: impl Fn(f64) -> f64,
) {
    let mut run: Vec<String> = Vec::new();
    let mut flush = |run: &mut Vec<String>| {
        if run.len() > 1 {
            writeln!(
                out,
                r#"<polyline fill="none" {style} points="{}"/>"#,
                run.join(" ")
            )
            .unwrap();
        }
        run.clear();
    };
    for (t, v) in points {
        match v {
            Some(v) => run.push(format!("{},{}", f(x(*t)), f(y(*v)))),
            None => flush(&mut run),
        }
    }
    flush(&mut run);
}

fn text(out: &mut String, x: f64, y: f64, attrs: &str, body: &str) {
    writeln!(
        out,
        r#"<text x="{}" y="{}" {attrs}>{body}</text>"#,
        f(x),
        f(y)
    )
    .unwrap();
}

fn line(out: &mut String, (x1, y1): (f64, f64), (x2, y2): (f64, f64), style: &str) {
    writeln!(
        out,
        r#"<line x1="{}" y1="{}" x2="{}" y2="{}" {style}/>"#,
        f(x1),
        f(y1),
        f(x2),
        f(y2)
    )
    .unwrap();
}

pub fn render(c: &Chart) -> String {
    let x = |t: f64| LEFT + (RIGHT - LEFT) * t.clamp(0.0, c.end) / c.end;
    let y_share = |v: f64| SHARE.1 - (SHARE.1 - SHARE.0 - HEADROOM) * v / 100.0;
    let y_err = |v: f64| ERRORS.1 - (ERRORS.1 - ERRORS.0) * v / 100.0;
    let mut out = String::new();
    writeln!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="Helvetica, Arial, sans-serif" font-size="13" fill="#222222">"##
    )
    .unwrap();
    writeln!(
        out,
        r##"<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>"##
    )
    .unwrap();
    text(
        &mut out,
        LEFT,
        26.0,
        r#"font-size="16" font-weight="bold""#,
        "make demo: the canary ramps up, fails, and Dial's guard pulls it back",
    );

    // Legend.
    let legend = [
        (format!(r#"stroke="{STABLE}" stroke-width="2.5""#), "stable"),
        (format!(r#"stroke="{CANARY}" stroke-width="2.5""#), "canary"),
        (
            format!(r#"stroke="{WEIGHT}" stroke-width="1.5" stroke-dasharray="6 3""#),
            "canary weight (Envoy's gauge)",
        ),
        (
            format!(r#"stroke="{STABLE}" stroke-width="1.5" stroke-dasharray="2 3""#),
            "sent to stable by the guardrail",
        ),
        (
            format!(r#"stroke="{ERROR}" stroke-width="2.5""#),
            "canary 5xx rate",
        ),
    ];
    let mut lx = LEFT;
    for (style, label) in &legend {
        line(&mut out, (lx, 50.0), (lx + 24.0, 50.0), style);
        text(&mut out, lx + 30.0, 54.5, "", label);
        lx += 30.0 + label.len() as f64 * 6.6 + 16.0;
    }

    // The ramp's steps, shaded, labelled at the top of the upper panel.
    let mut bands = vec![(0.0, format!("written {}%", c.written))];
    for (i, (at, w)) in c.steps.iter().enumerate() {
        let label = if *at >= c.tripped {
            format!("{w}%: not taken")
        } else if i == 0 {
            format!("ramp {w}%")
        } else {
            format!("{w}%")
        };
        bands.push((*at, label));
    }
    for (i, (from, label)) in bands.iter().enumerate() {
        if *from >= c.end {
            continue;
        }
        let to = bands.get(i + 1).map_or(c.end, |b| b.0.min(c.end));
        if i % 2 == 1 {
            writeln!(
                out,
                r##"<rect x="{}" y="{}" width="{}" height="{}" fill="#f2f2f2"/>"##,
                f(x(*from)),
                SHARE.0,
                f(x(to) - x(*from)),
                SHARE.1 - SHARE.0
            )
            .unwrap();
        }
        // At the band's start, or against its end if the band is too narrow for it.
        let (at, anchor) = if x(to) - x(*from) > label.len() as f64 * 6.2 + 12.0 {
            (x(*from) + 6.0, "start")
        } else {
            (x(to) - 4.0, "end")
        };
        text(
            &mut out,
            at,
            SHARE.0 + 15.0,
            &format!(r#"text-anchor="{anchor}" font-size="12" fill="{MUTED}""#),
            label,
        );
    }

    // Grids, axes and their labels.
    for v in [0.0, 25.0, 50.0, 75.0, 100.0] {
        line(
            &mut out,
            (LEFT, y_share(v)),
            (RIGHT, y_share(v)),
            &format!(r#"stroke="{GRID}""#),
        );
        text(
            &mut out,
            LEFT - 8.0,
            y_share(v) + 4.5,
            r#"text-anchor="end""#,
            &format!("{v}%"),
        );
    }
    for v in [0.0, 50.0, 100.0] {
        line(
            &mut out,
            (LEFT, y_err(v)),
            (RIGHT, y_err(v)),
            &format!(r#"stroke="{GRID}""#),
        );
        text(
            &mut out,
            LEFT - 8.0,
            y_err(v) + 4.5,
            r#"text-anchor="end""#,
            &format!("{v}%"),
        );
    }
    for (top, bottom) in [SHARE, ERRORS] {
        writeln!(
            out,
            r##"<rect x="{LEFT}" y="{top}" width="{}" height="{}" fill="none" stroke="#999999"/>"##,
            RIGHT - LEFT,
            bottom - top
        )
        .unwrap();
    }
    let mid = |(top, bottom): (f64, f64)| (top + bottom) / 2.0;
    for (label, y) in [
        ("share of requests", mid(SHARE)),
        ("canary 5xx rate", mid(ERRORS)),
    ] {
        writeln!(
            out,
            r#"<text x="22" y="{}" text-anchor="middle" transform="rotate(-90 22 {})">{label}</text>"#,
            f(y),
            f(y)
        )
        .unwrap();
    }
    for second in 0..=c.end as u64 {
        let t = second as f64;
        line(
            &mut out,
            (x(t), ERRORS.1),
            (x(t), ERRORS.1 + 5.0),
            r##"stroke="#999999""##,
        );
        if second.is_multiple_of(2) {
            text(
                &mut out,
                x(t),
                ERRORS.1 + 20.0,
                r#"text-anchor="middle""#,
                &second.to_string(),
            );
        }
    }
    text(
        &mut out,
        (LEFT + RIGHT) / 2.0,
        ERRORS.1 + 42.0,
        r#"text-anchor="middle""#,
        &format!(
            "seconds (one step per {} ms interval; {})",
            c.interval * 1000.0,
            c.load
        ),
    );

    // The guard's threshold, and where the canary had no traffic left to judge.
    line(
        &mut out,
        (LEFT, y_err(c.threshold)),
        (RIGHT, y_err(c.threshold)),
        &format!(r#"stroke="{ERROR}" stroke-opacity="0.6" stroke-dasharray="4 3""#),
    );
    text(
        &mut out,
        LEFT + 6.0,
        y_err(c.threshold) - 5.0,
        &format!(r#"font-size="12" fill="{ERROR}""#),
        &format!(
            "guard: trips {} points above stable's rate over {}",
            c.threshold, c.window
        ),
    );
    if c.end - c.last_canary > 1.5 {
        text(
            &mut out,
            (x(c.last_canary) + x(c.end)) / 2.0,
            mid(ERRORS) + 4.0,
            &format!(r#"text-anchor="middle" font-size="12" font-style="italic" fill="{MUTED}""#),
            "no request reaches the canary",
        );
    }

    // The series: each interval's value across the interval; the gauge as read at each
    // interval's end, until the next reading.
    let weight: Vec<(f64, Option<f64>)> = c
        .points
        .iter()
        .zip(c.points.iter().skip(1))
        .flat_map(|(a, b)| [(a.t, a.weight), (b.t, a.weight)])
        .collect();
    series(
        &mut out,
        &weight,
        &format!(r#"stroke="{WEIGHT}" stroke-width="1.5" stroke-dasharray="6 3""#),
        x,
        y_share,
    );
    let pick = |v: fn(&Point) -> Option<f64>| -> Vec<(f64, Option<f64>)> {
        c.points
            .iter()
            .flat_map(|p| [(p.t - c.interval, v(p)), (p.t, v(p))])
            .collect()
    };
    series(
        &mut out,
        &pick(|p| p.guardrail),
        &format!(r#"stroke="{STABLE}" stroke-width="1.5" stroke-dasharray="2 3""#),
        x,
        y_share,
    );
    for (values, colour) in [(pick(|p| p.stable), STABLE), (pick(|p| p.canary), CANARY)] {
        series(
            &mut out,
            &values,
            &format!(r#"stroke="{colour}" stroke-width="2.5""#),
            x,
            y_share,
        );
    }
    series(
        &mut out,
        &pick(|p| p.errors),
        &format!(r#"stroke="{ERROR}" stroke-width="2.5""#),
        x,
        y_err,
    );

    // The failure and the trip, across both panels.
    let (xf, xt) = (x(c.failed), x(c.tripped));
    line(
        &mut out,
        (xf, SHARE.0 - 14.0),
        (xf, ERRORS.1),
        &format!(r#"stroke="{MUTED}" stroke-width="1.5" stroke-dasharray="5 3""#),
    );
    text(
        &mut out,
        xf - 5.0,
        SHARE.0 - 4.0,
        &format!(r#"text-anchor="end" font-size="12" fill="{MUTED}""#),
        "canary answers 500",
    );
    line(
        &mut out,
        (xt, SHARE.0 - 14.0),
        (xt, ERRORS.1),
        &format!(r#"stroke="{ERROR}" stroke-width="2""#),
    );
    text(
        &mut out,
        xt + 5.0,
        SHARE.0 - 4.0,
        &format!(r#"font-size="12" font-weight="bold" fill="{ERROR}""#),
        &format!("guard tripped {:.2} s later", c.tripped - c.failed),
    );
    out.push_str("</svg>\n");
    out
}
