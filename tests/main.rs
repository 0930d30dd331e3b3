//! baler's integration tests: one binary, everything through the front door (a real server on
//! port 0, real git repositories, real HTTP).

mod admin;
mod admin_page;
mod admin_tokens;
mod archives;
mod burst;
mod faults;
mod leases;
mod problems;
mod providers;
mod publishing;
mod queue;
mod release_path;
mod support;
mod webhooks;
