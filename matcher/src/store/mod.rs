//! Queries only the matcher makes; shared ones are in `herald_common::store`.

pub mod tenants;
