//! Download statistics: `GET /api/v1/projects/{project}/stats` and the project page's chart,
//! `GET /projects/{project}/downloads.svg` (drawn here, so the page needs no script). Both read
//! the counts written so far (`crate::downloads`), up to one flush interval behind.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde::Serialize;

use super::AppState;
use super::pages::find_public_project;
use crate::error::{ApiError, AppError};
use crate::publish::sort_newest_first;
use crate::releases::{self, ReleaseWithFiles};

/// The days the API and the chart show, today included.
pub const DAYS: u32 = 90;

#[derive(Debug, Serialize)]
pub struct Stats {
    total: i64,
    days: Vec<Day>,
    releases: Vec<ReleaseDownloads>,
}

#[derive(Debug, Serialize)]
struct Day {
    date: String,
    downloads: i64,
}

#[derive(Debug, Serialize)]
struct ReleaseDownloads {
    version: String,
    downloads: i64,
}

/// `GET /api/v1/projects/{project}/stats`: all-time downloads, the last [`DAYS`] days (each
/// day, oldest first, 0 when none) and each release's all-time downloads, newest release
/// first.
pub async fn project_stats(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Stats>, ApiError> {
    let project = find_public_project(&state, &name).await?;
    let counts = crate::downloads::project_counts(&state.db, project.id, DAYS).await?;
    let all = releases::for_project(&state.db, project.id).await?;
    let mut ordered: Vec<&ReleaseWithFiles> = all.iter().collect();
    sort_newest_first(&mut ordered);
    let releases = ordered
        .into_iter()
        .map(|r| ReleaseDownloads {
            version: r.release.version.clone(),
            downloads: r
                .files
                .iter()
                .map(|f| counts.files.get(&f.name).copied().unwrap_or(0))
                .sum(),
        })
        .collect();
    Ok(Json(Stats {
        total: counts.total,
        days: counts
            .days
            .iter()
            .map(|(date, downloads)| Day {
                date: date.to_string(),
                downloads: *downloads,
            })
            .collect(),
        releases,
    }))
}

/// `GET /projects/{project}/downloads.svg`: a bar a day over the last [`DAYS`] days.
pub async fn chart(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, AppError> {
    let project = find_public_project(&state, &name).await?;
    let counts = crate::downloads::project_counts(&state.db, project.id, DAYS).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            // Counts move at most once a flush; a minute's copy is close enough.
            (header::CACHE_CONTROL, "public, max-age=60"),
        ],
        svg(&counts.days),
    )
        .into_response())
}

const WIDTH: usize = 720;
const HEIGHT: usize = 140;
const TOP: usize = 24;
const BOTTOM: usize = 18;

/// The chart: one bar a day, scaled to the busiest day, with the sum and the first and last
/// dates written under it.
pub fn svg(days: &[(NaiveDate, i64)]) -> String {
    let most = days.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let sum: i64 = days.iter().map(|(_, n)| n).sum();
    let slot = WIDTH as f64 / days.len().max(1) as f64;
    let plot = (HEIGHT - TOP - BOTTOM) as f64;
    let mut bars = String::new();
    for (i, (date, n)) in days.iter().enumerate() {
        let height = plot * (*n as f64) / most as f64;
        bars.push_str(&format!(
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{height:.1}\"><title>{date}: {n}</title></rect>",
            i as f64 * slot + 0.5,
            (HEIGHT - BOTTOM) as f64 - height,
            (slot - 1.0).max(1.0),
        ));
    }
    let (first, last) = match (days.first(), days.last()) {
        (Some((first, _)), Some((last, _))) => (first.to_string(), last.to_string()),
        _ => (String::new(), String::new()),
    };
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{sum} {noun} in the last {} days\">\
         <title>{sum} {noun} in the last {} days</title>\
         <text x=\"0\" y=\"14\" font-family=\"sans-serif\" font-size=\"12\">{sum} {noun} in the last {} days (busiest day: {})</text>\
         <g fill=\"#3b6ea5\">{bars}</g>\
         <line x1=\"0\" y1=\"{base}\" x2=\"{WIDTH}\" y2=\"{base}\" stroke=\"#999\"/>\
         <text x=\"0\" y=\"{label}\" font-family=\"sans-serif\" font-size=\"11\" fill=\"#666\">{first}</text>\
         <text x=\"{WIDTH}\" y=\"{label}\" font-family=\"sans-serif\" font-size=\"11\" fill=\"#666\" text-anchor=\"end\">{last}</text>\
         </svg>\n",
        days.len(),
        days.len(),
        days.len(),
        if sum == 0 { 0 } else { most },
        base = HEIGHT - BOTTOM,
        label = HEIGHT - 4,
        noun = if sum == 1 { "download" } else { "downloads" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_follow_the_counts() {
        let day = |d: u32| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        let text = svg(&[(day(1), 0), (day(2), 5), (day(3), 10)]);
        let doc = roxmltree::Document::parse(&text).expect("well-formed SVG");
        let bars: Vec<roxmltree::Node> = doc
            .descendants()
            .filter(|n| n.has_tag_name("rect"))
            .collect();
        assert_eq!(bars.len(), 3);
        let height = |i: usize| bars[i].attribute("height").unwrap().parse::<f64>().unwrap();
        // The busiest day fills the plot; an empty day has no height; the rest in proportion.
        assert_eq!(height(2), (HEIGHT - TOP - BOTTOM) as f64);
        assert_eq!(height(0), 0.0);
        assert_eq!(height(1), height(2) / 2.0);
        assert_eq!(
            bars[2].first_child().unwrap().text(),
            Some("2026-11-03: 10")
        );
        assert!(text.contains("15 downloads in the last 3 days (busiest day: 10)"));
        roxmltree::Document::parse(&svg(&[])).expect("an empty chart is well-formed");
    }
}
