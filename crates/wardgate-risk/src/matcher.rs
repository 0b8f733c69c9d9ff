//! Matching (placeholder).
