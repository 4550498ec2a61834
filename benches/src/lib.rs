//! Criterion benchmarks for lanlink's hot paths; see `benches/` and
//! `docs/PERFORMANCE.md`.
