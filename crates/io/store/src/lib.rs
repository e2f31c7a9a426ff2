//! Storage drivers behind the engine's traits. SQLite is the embedded default: one file
//! in the data directory, so registrations survive a restart.

mod sqlite;

pub use sqlite::SqliteLocations;
