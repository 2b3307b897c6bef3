//! SQL store backends (placeholder while the crate is written).
