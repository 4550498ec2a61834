//! The lanlink reference programs (`lanlink-server`, `lanlink`): argument
//! parsing and wiring of the library crates, nothing more.
