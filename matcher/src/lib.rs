//! herald-matcher
