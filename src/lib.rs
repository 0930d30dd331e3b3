//! baler: a webhook-driven release packager for Git repositories. See `docs/ARCHITECTURE.md`
//! for the map of the code.

pub mod admin;
pub mod cli;
pub mod config;
pub mod connect;
pub mod db;
pub mod deliveries;
pub mod demo;
pub mod documents;
pub mod downloads;
pub mod error;
pub mod git;
pub mod hooks;
pub mod intake;
pub mod maintenance;
pub mod metrics;
pub mod names;
pub mod notify;
pub mod package;
pub mod problems;
pub mod projects;
pub mod provider;
pub mod publish;
pub mod queue;
pub mod redact;
pub mod releases;
pub mod retention;
pub mod schedule;
pub mod signing;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod time;
pub mod web;
pub mod worker;
