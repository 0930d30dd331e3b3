//! Guessing admin tokens: failed Bearer and login attempts are limited per client address.
