//! Sandbox harness
