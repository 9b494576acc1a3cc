//! Cascade media core.
