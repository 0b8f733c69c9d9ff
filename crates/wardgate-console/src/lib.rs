//! wardgate's web console and HTTPS admin API (docs/console.md).
