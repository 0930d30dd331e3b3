//! baler's integration tests: one binary, everything through the front door (a real server on
//! port 0, real git repositories, real HTTP).

mod abuse;
mod admin;
mod admin_page;
mod admin_tokens;
mod archives;
mod auth_throttle;
mod browser_pages;
mod burst;
mod chart_render;
mod ci_releases;
mod connect;
mod download_stats;
mod faults;
mod http_limits;
mod leases;
mod metrics;
mod multi_node;
mod notifications;
mod problems;
mod projects_api;
mod projects_leave;
mod providers;
mod publishing;
mod queue;
mod read_cache;
mod release_path;
mod retention;
mod s3_storage;
mod schedule;
mod signing;
mod support;
mod webhooks;
