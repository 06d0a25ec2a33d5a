//! herald-executor
