//! Clients that stall, flood or hold connections, on real sockets; security headers; weak
//! admin tokens.
