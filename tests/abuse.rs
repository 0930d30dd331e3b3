//! Webhooks from the open internet: what unauthenticated input may store, replays of signed
//! deliveries, numbers that would overflow, and a database that cannot commit.
