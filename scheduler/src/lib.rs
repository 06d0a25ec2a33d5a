//! herald-scheduler
