//! Cascade media core.

pub mod stats;
