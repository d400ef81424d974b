//! time-lapse.html: the stores and memory by simulated month, with the
//! charts of the load test's report (static SVG, no script).

use std::fmt::Write as _;

use super::super::html::{STYLE, Series, card, esc, line_chart, number, table};
use super::months::MonthRow;
use super::{TimeLapseReport, verdict::SeriesVerdict};

const MB: f64 = 1e6;

pub fn render(r: &TimeLapseReport) -> String {
    let mut body = String::new();
    let c = &r.config;
    let _ = write!(
        body,
        "<h1>Time-lapse: {} years of operation</h1><p class=\"sub\">{} claims a day from {} to {} \
         ({} claims, {} partitions, seed {}); the stages stop and their stores are counted at the \
         end of every simulated month.</p>",
        c.years, c.per_day, c.start, c.end, c.claims_in_period, c.partitions, c.seed
    );
    body.push_str(&cards(r));
    body.push_str(&charts(r));
    body.push_str(&verdict_table(r));
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>clearing time-lapse</title>\
         <style>{STYLE}</style></head><body>{body}</body></html>"
    )
}

fn cards(r: &TimeLapseReport) -> String {
    let verdict = match r.verdict.flat {
        Some(true) => "flat",
        Some(false) => "not flat",
        None => "not judged",
    };
    format!(
        "<div class=\"cards\">{}{}{}</div>",
        card(
            "verdict after the window",
            verdict,
            &format!("±{:.0} % of the mean", super::verdict::TOLERANCE * 100.0)
        ),
        card(
            "months judged from",
            r.window.steady_from.as_deref().unwrap_or("none"),
            &format!(
                "time-bar {} + {} days",
                r.window.barred_from, r.window.margin_days
            )
        ),
        card(
            "claims",
            &number(r.config.claims_in_period as f64),
            &format!("{:.0} s", r.run_seconds)
        ),
    )
}

/// The month index of the first month judged, for the charts' marker.
fn steady_index(r: &TimeLapseReport) -> Option<f64> {
    let from = r.window.steady_from.as_deref()?;
    r.months
        .iter()
        .position(|m| m.month.as_str() >= from)
        .map(|i| (i + 1) as f64)
}

fn by_month<'a>(rows: &[MonthRow], name: &'a str, figure: impl Fn(&MonthRow) -> f64) -> Series<'a> {
    Series {
        name,
        points: rows
            .iter()
            .enumerate()
            .map(|(i, row)| ((i + 1) as f64, figure(row)))
            .collect(),
    }
}

fn charts(r: &TimeLapseReport) -> String {
    let rows = &r.months;
    let x = match steady_index(r) {
        Some(i) => format!("simulated month (judged from month {i:.0})"),
        None => "simulated month".to_string(),
    };
    let stages: Vec<&'static str> = rows
        .first()
        .map(|row| row.stages.iter().map(|s| s.stage).collect())
        .unwrap_or_default();
    let mut out = String::from("<h2>Stores on disk and memory</h2>");
    let disk: Vec<Series<'_>> = stages
        .iter()
        .enumerate()
        .map(|(i, stage)| by_month(rows, stage, |row| row.stages[i].disk_bytes as f64 / MB))
        .collect();
    out.push_str(&line_chart(
        "sled store on disk by stage",
        &x,
        "MB",
        &disk,
        &[],
    ));
    let memory = [
        by_month(rows, "RSS peak", |row| row.rss_peak_bytes as f64 / MB),
        by_month(rows, "RSS after", |row| row.rss_after_bytes as f64 / MB),
        by_month(rows, "stages' state in memory", |row| {
            row.stage_memory_bytes as f64 / MB
        }),
    ];
    out.push_str(&line_chart("process memory", &x, "MB", &memory, &[]));
    out.push_str("<h2>Live keys by kind</h2>");
    for (i, stage) in stages.iter().enumerate() {
        let kinds: std::collections::BTreeSet<&String> = rows
            .iter()
            .flat_map(|row| row.stages[i].keys_by_kind.keys())
            .collect();
        let series: Vec<Series<'_>> = kinds
            .into_iter()
            .map(|kind| {
                by_month(rows, kind.as_str(), move |row| {
                    row.stages[i].keys_by_kind.get(kind).copied().unwrap_or(0) as f64
                })
            })
            .collect();
        out.push_str(&line_chart(
            &format!("{stage}: live keys by kind"),
            &x,
            "keys",
            &series,
            &[],
        ));
    }
    out
}

fn verdict_table(r: &TimeLapseReport) -> String {
    let row = |s: &SeriesVerdict| {
        vec![
            s.series.clone(),
            match s.flat {
                Some(true) => "flat".into(),
                Some(false) => "NOT flat".into(),
                None => "n/a".into(),
            },
            number(s.mean),
            format!(
                "{:.1} % of ±{:.1} %{}",
                s.max_deviation_pct,
                s.band_pct,
                if s.within_band == Some(false) {
                    " (out of band)"
                } else {
                    ""
                }
            ),
            format!("{:+.2} %", s.slope_pct_per_month),
        ]
    };
    let head = [
        "series",
        "verdict",
        "mean",
        "max deviation",
        "slope / month",
    ];
    let series: Vec<Vec<String>> = r.verdict.series.iter().map(row).collect();
    let kinds: Vec<Vec<String>> = r.verdict.key_kinds.iter().map(row).collect();
    format!(
        "<h2>Verdict</h2><p>{}</p>{}<h2>Key kinds (reported alone)</h2>{}",
        esc(r.verdict.rule),
        table(&head, &series),
        table(&head, &kinds)
    )
}
