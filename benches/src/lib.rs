//! Shared fixtures of the workspace benchmarks: realistic inputs built once and used by the criterion benches in
//! `benches/` and by the measurement binaries in `src/bin/`.

pub mod alloc;
pub mod appstate;
pub mod figures;
pub mod sessions;
