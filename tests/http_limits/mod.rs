//! Clients that stall, flood or hold connections, on real sockets; security headers, also as
//! Chromium sees them; weak admin tokens and running out of file descriptors, on a real
//! `baler serve`.
//!
//! Time limits here are 1–2 s and each wait for them allows 5 s or more, so a slow machine
//! makes the tests slower, not flaky.

mod security_headers;
mod server_process;
mod slow_clients;
