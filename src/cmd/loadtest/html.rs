//! `report.html`: the same figures as `report.json`, for a person. One file,
//! charts as inline SVG, no script and nothing fetched.

use std::fmt::Write as _;

use super::report::{BILLION_A_YEAR_PER_S, Report, Sample};

const W: f64 = 760.0;
const H: f64 = 260.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 42.0;
const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

pub(super) fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A round upper bound for an axis (1, 2, 5 × 10ⁿ).
fn nice(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    for step in [1.0, 2.0, 5.0, 10.0] {
        if step * magnitude >= max {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

pub(super) fn number(v: f64) -> String {
    if v.abs() >= 10_000.0 {
        let s = format!("{:.0}", v);
        // Thin-space thousands for readability.
        let bytes: Vec<char> = s.chars().collect();
        let mut out = String::new();
        for (i, c) in bytes.iter().enumerate() {
            if i > 0 && (bytes.len() - i).is_multiple_of(3) && c.is_ascii_digit() {
                out.push('\u{2009}');
            }
            out.push(*c);
        }
        out
    } else if v.abs() >= 100.0 || v == v.trunc() {
        format!("{:.0}", v)
    } else if v.abs() >= 10.0 {
        format!("{:.1}", v)
    } else {
        format!("{:.2}", v)
    }
}

pub(super) struct Series<'a> {
    pub(super) name: &'a str,
    pub(super) points: Vec<(f64, f64)>,
}

/// The opening of a chart `height` high, with its title.
fn svg_start(height: f64, title: &str) -> String {
    format!(
        r#"<svg viewBox="0 0 {W} {height}" width="{W}" height="{height}" role="img" aria-label="{t}"><text x="{LEFT}" y="20" class="title">{t}</text>"#,
        t = esc(title)
    )
}

/// A chart's plotting area: data coordinates to the SVG's.
struct Plot {
    x_max: f64,
    y_max: f64,
}

impl Plot {
    const WIDTH: f64 = W - LEFT - RIGHT;
    const HEIGHT: f64 = H - TOP - BOTTOM;

    /// Axes from 0 to the largest point (x) and to a round figure above
    /// the largest point or reference (y).
    fn fitting(series: &[Series<'_>], references: &[(String, f64)]) -> Plot {
        let x_max = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .fold(0.0, f64::max)
            .max(1.0);
        let y_max = nice(
            series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.1))
                .chain(references.iter().map(|r| r.1))
                .fold(0.0, f64::max)
                * 1.05,
        );
        Plot { x_max, y_max }
    }

    fn x(&self, v: f64) -> f64 {
        LEFT + Plot::WIDTH * v / self.x_max
    }

    fn y(&self, v: f64) -> f64 {
        TOP + Plot::HEIGHT * (1.0 - v / self.y_max)
    }

    /// Five horizontal grid lines, labelled on the left.
    fn y_grid(&self, svg: &mut String) {
        for i in 0..=4 {
            let v = self.y_max * f64::from(i) / 4.0;
            let _ = write!(
                svg,
                r#"<line x1="{LEFT}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" class="grid"/><text x="{}" y="{:.1}" class="tick" text-anchor="end">{}</text>"#,
                W - RIGHT,
                LEFT - 6.0,
                self.y(v) + 4.0,
                number(v),
                yy = self.y(v)
            );
        }
    }

    /// The grid, six ticks along x, and both axes' labels.
    fn axes(&self, svg: &mut String, x_label: &str, y_label: &str) {
        self.y_grid(svg);
        for i in 0..=5 {
            let v = self.x_max * f64::from(i) / 5.0;
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{}" class="tick" text-anchor="middle">{}</text>"#,
                self.x(v),
                H - BOTTOM + 16.0,
                number(v)
            );
        }
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{}" class="axis" text-anchor="middle">{}</text><text x="14" y="{:.1}" class="axis" text-anchor="middle" transform="rotate(-90 14 {:.1})">{}</text>"#,
            LEFT + Plot::WIDTH / 2.0,
            H - 6.0,
            esc(x_label),
            TOP + Plot::HEIGHT / 2.0,
            TOP + Plot::HEIGHT / 2.0,
            esc(y_label)
        );
    }

    /// Dashed horizontal lines at (label, y).
    fn references(&self, svg: &mut String, references: &[(String, f64)]) {
        for (label, v) in references {
            let _ = write!(
                svg,
                r#"<line x1="{LEFT}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" class="ref"/><text x="{}" y="{:.1}" class="reflabel" text-anchor="end">{}</text>"#,
                W - RIGHT,
                W - RIGHT - 4.0,
                self.y(*v) - 4.0,
                esc(label),
                yy = self.y(*v)
            );
        }
    }

    /// A line per series, and its legend above the plot.
    fn lines(&self, svg: &mut String, series: &[Series<'_>]) {
        for (i, s) in series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let points: Vec<String> = s
                .points
                .iter()
                .map(|(px, py)| format!("{:.1},{:.1}", self.x(*px), self.y(*py)))
                .collect();
            let _ = write!(
                svg,
                r#"<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{}"/>"#,
                points.join(" ")
            );
            let lx = LEFT + 10.0 + 150.0 * i as f64;
            let _ = write!(
                svg,
                r#"<rect x="{lx:.0}" y="{}" width="12" height="3" fill="{color}"/><text x="{:.0}" y="{}" class="legend">{}</text>"#,
                TOP - 4.0,
                lx + 16.0,
                TOP,
                esc(s.name)
            );
        }
    }
}

/// A line chart of series over a shared x axis, with optional dashed
/// reference lines (label, y).
pub(super) fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series<'_>],
    references: &[(String, f64)],
) -> String {
    let plot = Plot::fitting(series, references);
    let mut svg = svg_start(H, title);
    plot.axes(&mut svg, x_label, y_label);
    plot.references(&mut svg, references);
    plot.lines(&mut svg, series);
    svg.push_str("</svg>");
    svg
}

/// Horizontal bars: (label, value, text shown beside the bar).
fn bar_chart(title: &str, bars: &[(String, f64, String)]) -> String {
    let row = 26.0;
    let height = TOP + row * bars.len() as f64 + 12.0;
    let label_w = 170.0;
    let max = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1e-12);
    let pw = W - label_w - 190.0;
    let mut svg = svg_start(height, title);
    for (i, (label, value, text)) in bars.iter().enumerate() {
        let y = TOP + row * i as f64;
        let w = (pw * value / max).max(1.0);
        let _ = write!(
            svg,
            r#"<text x="{:.0}" y="{:.1}" class="tick" text-anchor="end">{}</text><rect x="{label_w}" y="{:.1}" width="{w:.1}" height="{}" fill="{}"/><text x="{:.1}" y="{:.1}" class="tick">{}</text>"#,
            label_w - 8.0,
            y + 15.0,
            esc(label),
            y + 3.0,
            row - 8.0,
            COLORS[i % COLORS.len()],
            label_w + w + 6.0,
            y + 15.0,
            esc(text)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Vertical bars of a distribution: (bucket label, count).
fn histogram_chart(title: &str, buckets: &[(String, u64)]) -> String {
    let (pw, ph) = (Plot::WIDTH, Plot::HEIGHT);
    let max = nice(buckets.iter().map(|b| b.1).max().unwrap_or(0) as f64);
    let n = buckets.len().max(1) as f64;
    let slot = pw / n;
    let mut svg = svg_start(H, title);
    Plot {
        x_max: 1.0,
        y_max: max,
    }
    .y_grid(&mut svg);
    for (i, (label, count)) in buckets.iter().enumerate() {
        let h = ph * *count as f64 / max;
        let x = LEFT + slot * i as f64;
        let _ = write!(
            svg,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="#1f77b4"><title>{} decisions</title></rect><text x="{:.1}" y="{}" class="tick" text-anchor="middle">{}</text>"##,
            x + 3.0,
            TOP + ph - h,
            (slot - 6.0).max(1.0),
            count,
            x + slot / 2.0,
            H - BOTTOM + 16.0,
            esc(label)
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{:.1}" y="{}" class="axis" text-anchor="middle">latency, up to (ms)</text><text x="14" y="{:.1}" class="axis" text-anchor="middle" transform="rotate(-90 14 {:.1})">decisions</text></svg>"#,
        LEFT + pw / 2.0,
        H - 6.0,
        TOP + ph / 2.0,
        TOP + ph / 2.0
    );
    svg
}

pub(super) fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::from("<table><thead><tr>");
    for h in head {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{}</td>", esc(cell));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

pub(super) fn card(label: &str, value: &str, note: &str) -> String {
    format!(
        r#"<div class="card"><div class="label">{}</div><div class="value">{}</div><div class="note">{}</div></div>"#,
        esc(label),
        esc(value),
        esc(note)
    )
}

pub(super) const STYLE: &str = r#"
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 24px auto; max-width: 800px; padding: 0 12px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.sub { color: #666; margin-top: 0; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 16px 0; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 8px 12px; min-width: 150px; flex: 1; }
.card .label { color: #666; font-size: 12px; } .card .value { font-size: 22px; font-weight: 600; } .card .note { color: #666; font-size: 12px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0; font-size: 13px; }
th, td { border-bottom: 1px solid #eee; padding: 4px 6px; text-align: left; } td { font-variant-numeric: tabular-nums; }
.met { color: #1a7f37; font-weight: 600; } .missed { color: #c62828; font-weight: 600; } .na { color: #777; }
svg { display: block; margin: 10px 0; max-width: 100%; height: auto; }
svg .title { font-size: 13px; font-weight: 600; fill: #222; } svg .tick { font-size: 11px; fill: #555; }
svg .axis { font-size: 11px; fill: #333; } svg .legend { font-size: 11px; fill: #333; }
svg .grid { stroke: #eee; } svg .ref { stroke: #999; stroke-dasharray: 5 4; } svg .reflabel { font-size: 11px; fill: #777; }
ul.bound li { margin-bottom: 4px; }
"#;

/// The page: a header and a section per concern, in reading order.
pub fn render(r: &Report) -> String {
    let body = [
        header(r),
        cards(r),
        targets(r),
        bound(r),
        throughput(r),
        latency(r),
        per_stage(r),
        cpu_and_memory(r),
        raw_limits(r),
        state(r),
        counts(r),
    ]
    .concat();
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>clearing loadtest</title><style>{STYLE}</style></head><body>{body}<p class=\"sub\">Every figure is also in report.json beside this file.</p></body></html>\n"
    )
}

/// The title and the run's setting in a sentence.
fn header(r: &Report) -> String {
    format!(
        "<h1>clearing loadtest — {} claims/s steady</h1><p class=\"sub\">{} on {}, {} partitions, batch {}, {} workers per stage{}; {} cores, kernel {}, load average {:.1} → {:.1}. {}</p>",
        number(r.throughput.steady_per_s),
        esc(r.config.mode),
        esc(&r.config.bus),
        r.config.partitions,
        r.config.batch,
        r.config.workers_per_stage,
        if r.config.trust_unsigned {
            ", signatures NOT checked (--trust-unsigned)"
        } else {
            ", every signature verified"
        },
        r.machine.cores,
        esc(&r.machine.kernel),
        r.machine.load_avg_before[0],
        r.machine.load_avg_after[0],
        if r.run.complete {
            "Every claim reached an outcome."
        } else {
            "<strong>The run ended with claims still pending.</strong>"
        }
    )
}

/// The four headline figures.
fn cards(r: &Report) -> String {
    [
        "<div class=\"cards\">".to_string(),
        card(
            "steady throughput",
            &format!("{}/s", number(r.throughput.steady_per_s)),
            &format!(
                "{}× the billion-a-year mean ({:.1}/s)",
                number(r.throughput.steady_x_mean),
                BILLION_A_YEAR_PER_S
            ),
        ),
        card(
            "latency p50 / p99",
            &format!(
                "{} / {} ms",
                number(r.latency.p50_ms),
                number(r.latency.p99_ms)
            ),
            &format!(
                "max {} ms, {} decisions; {}",
                number(r.latency.max_ms),
                r.latency.count,
                r.latency_after_warm_up.describe_p99()
            ),
        ),
        card(
            "CPU per claim",
            &format!("{} µs", number(r.resources.pipeline_cpu_us_per_claim)),
            &format!(
                "{}% of one core on average",
                number(r.resources.cpu_percent_mean)
            ),
        ),
        card(
            "memory (RSS)",
            &format!("{} MB", number(r.resources.rss_end_mb)),
            &format!(
                "max {} MB, {:+.2} MB/min late in the run",
                number(r.resources.rss_max_mb),
                r.resources.rss_slope_mb_per_min
            ),
        ),
        "</div>".to_string(),
    ]
    .concat()
}

fn targets(r: &Report) -> String {
    let mut out = String::from("<h2>Targets</h2>");
    out.push_str("<table><thead><tr><th>target</th><th>wanted</th><th>measured</th><th>verdict</th></tr></thead><tbody>");
    for t in &r.targets {
        let (class, verdict) = match t.met {
            Some(true) => ("met", "met"),
            Some(false) => ("missed", "not met"),
            None => ("na", "not judged by this run"),
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{class}\">{verdict}</td></tr>",
            esc(&t.name),
            esc(&t.target),
            esc(&t.measured)
        );
    }
    out.push_str("</tbody></table>");
    out
}

fn bound(r: &Report) -> String {
    let mut out = String::from("<h2>What bounds the rate</h2><ul class=\"bound\">");
    for line in &r.bound {
        let _ = write!(out, "<li>{}</li>", esc(line));
    }
    out.push_str("</ul>");
    out
}

/// A series of one figure of each sample over time.
fn over_time<'a>(r: &Report, name: &'a str, figure: impl Fn(&Sample) -> f64) -> Series<'a> {
    Series {
        name,
        points: r.timeline.iter().map(|s| (s.t_s, figure(s))).collect(),
    }
}

fn throughput(r: &Report) -> String {
    let mut refs = Vec::new();
    if r.config.rate > 0.0 {
        refs.push((
            format!("offered {}/s", number(r.config.rate)),
            r.config.rate,
        ));
    }
    let chart = line_chart(
        "claims per second",
        "seconds since the first claim was sent",
        "claims/s",
        &[
            over_time(r, "submitted", |s| s.fed_per_s),
            over_time(r, "decided (outcomes)", |s| s.outcomes_per_s),
        ],
        &refs,
    );
    format!("<h2>Throughput over time</h2>{chart}")
}

fn latency(r: &Report) -> String {
    let buckets: Vec<(String, u64)> = r
        .latency
        .buckets
        .iter()
        .map(|(edge, n)| (number(*edge), *n))
        .collect();
    let l = &r.latency;
    let percentiles = [
        l.p50_ms, l.p90_ms, l.p95_ms, l.p99_ms, l.p999_ms, l.max_ms, l.mean_ms,
    ]
    .iter()
    .map(|v| format!("{} ms", number(*v)))
    .collect();
    [
        "<h2>Latency</h2>".to_string(),
        histogram_chart(
            "decisions by end-to-end latency (sent → decision seen)",
            &buckets,
        ),
        table(
            &["p50", "p90", "p95", "p99", "p99.9", "max", "mean"],
            &[percentiles],
        ),
        line_chart(
            "latency per second of the run",
            "seconds",
            "ms",
            &[
                over_time(r, "p50", |s| s.p50_ms),
                over_time(r, "p99", |s| s.p99_ms),
            ],
            &[],
        ),
        format!(
            "<p class=\"sub\">Clock: {}.</p>",
            esc(r.config.latency_clock)
        ),
    ]
    .concat()
}

fn per_stage(r: &Report) -> String {
    let cpu: Vec<(String, f64, String)> = r
        .stages
        .iter()
        .map(|s| {
            (
                s.stage.to_string(),
                s.cpu_us_per_input,
                format!(
                    "{} µs ({}/s per core)",
                    number(s.cpu_us_per_input),
                    number(s.per_core_per_s)
                ),
            )
        })
        .collect();
    let rows: Vec<Vec<String>> = r
        .stages
        .iter()
        .map(|s| {
            vec![
                s.stage.to_string(),
                s.inputs.to_string(),
                s.passed.to_string(),
                s.rejected.to_string(),
                s.dead_letters.to_string(),
                s.duplicates_dropped.to_string(),
                s.batches.to_string(),
                format!("{:.1}", s.cpu_s),
                number(s.per_s),
                number(s.lag_mean),
                s.lag_max.to_string(),
            ]
        })
        .collect();
    let head = [
        "stage",
        "inputs",
        "passed",
        "rejected",
        "dead letters",
        "dup. dropped",
        "batches",
        "CPU s",
        "inputs/s",
        "mean lag",
        "max lag",
    ];
    [
        "<h2>Per stage</h2>".to_string(),
        bar_chart("CPU of each stage's thread per input (µs)", &cpu),
        table(&head, &rows),
        lag_chart(r),
    ]
    .concat()
}

fn lag_chart(r: &Report) -> String {
    let names = ["validation", "entitlement", "routing", "reimbursement"];
    let lag_series: Vec<Series<'_>> = names
        .iter()
        .enumerate()
        .map(|(i, name)| over_time(r, name, |s| s.lag.get(i).copied().unwrap_or(0) as f64))
        .collect();
    line_chart(
        "consumer lag: records on each stage's input not yet committed",
        "seconds",
        "records",
        &lag_series,
        &[],
    )
}

fn cpu_and_memory(r: &Report) -> String {
    [
        "<h2>CPU and memory</h2>".to_string(),
        line_chart(
            "CPU of the process (% of one core)",
            "seconds",
            "%",
            &[over_time(r, "CPU %", |s| s.cpu_percent)],
            &[(
                format!("{} cores", r.machine.cores),
                100.0 * r.machine.cores as f64,
            )],
        ),
        line_chart(
            "resident memory (MB)",
            "seconds",
            "MB",
            &[over_time(r, "RSS", |s| s.rss_mb)],
            &[],
        ),
    ]
    .concat()
}

fn raw_limits(r: &Report) -> String {
    let mut rows = Vec::new();
    if let Some(v) = &r.raw.verification {
        rows.push(vec![
            "signature verification (Pki::verify, one core)".into(),
            format!("{}/s", number(v.raw_per_s)),
            format!("{} claims, {} RSA, {} rounds", v.claims, v.rsa, v.rounds),
        ]);
        rows.push(vec![
            "validation stage, pure path (decode + validate)".into(),
            format!("{}/s", number(v.validation_per_s)),
            format!(
                "{:.1} % of raw (median of interleaved rounds)",
                100.0 * v.validation_ratio
            ),
        ]);
        if let Some(p) = v.pipeline_validation_ratio {
            rows.push(vec![
                "validation in the pipeline (per CPU-second of its thread)".into(),
                format!("{}/s", number(p * v.raw_per_s)),
                format!("{:.1} % of raw", 100.0 * p),
            ]);
        }
    }
    if let Some(p) = &r.raw.bus_passthrough {
        rows.push(vec![
            "bus pass-through (consume → produce, no work)".into(),
            format!("{}/s", number(p.per_s)),
            format!(
                "{} records of {:.0} bytes, {} partitions; pipeline at {:.1} %",
                p.records,
                p.bytes_per_record,
                p.partitions,
                100.0 * p.pipeline_ratio
            ),
        ]);
    }
    format!(
        "<h2>Raw limits, same run</h2>{}",
        table(&["limit", "rate", "note"], &rows)
    )
}

fn state(r: &Report) -> String {
    let rows: Vec<Vec<String>> = r
        .state
        .iter()
        .map(|s| {
            vec![
                s.stage.to_string(),
                s.keys.to_string(),
                s.key_value_bytes.to_string(),
                format!("{:.1} MB", s.disk_bytes as f64 / 1e6),
                s.keys_by_kind
                    .iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ]
        })
        .collect();
    let head = [
        "stage",
        "keys",
        "key+value bytes",
        "on disk",
        "keys by kind",
    ];
    format!("<h2>State after the run</h2>{}", table(&head, &rows))
}

fn counts(r: &Report) -> String {
    let head = [
        "submitted",
        "paid",
        "rejected",
        "dead letters",
        "pending",
        "unmatched",
        "corpus",
        "wraps",
    ];
    let row = vec![
        r.run.submitted.to_string(),
        r.run.paid.to_string(),
        r.run.rejected.to_string(),
        r.run.dead_letters.to_string(),
        r.run.pending.to_string(),
        r.run.unmatched.to_string(),
        format!("{} claims ({})", r.corpus.claims, r.corpus.dir),
        r.corpus.wraps.to_string(),
    ];
    format!("<h2>Counts</h2>{}", table(&head, &[row]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_round_up() {
        assert_eq!(nice(0.0), 1.0);
        assert_eq!(nice(7.0), 10.0);
        assert_eq!(nice(120.0), 200.0);
        assert_eq!(nice(25_000.0), 50_000.0);
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(esc("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
        assert!(line_chart("x<y", "s", "n", &[], &[]).contains("x&lt;y"));
    }

    #[test]
    fn large_numbers_get_thousands_separators() {
        assert_eq!(number(25_000.0), "25\u{2009}000");
        assert_eq!(number(6.25), "6.25");
    }
}
