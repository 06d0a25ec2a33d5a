//! Queries only the scheduler makes; shared ones are in `herald_common::store`.

pub mod retention;
