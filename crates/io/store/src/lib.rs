//! Storage drivers behind the engine's traits. SQLite is the embedded default: one file
//! in the data directory, so registrations survive a restart. The location service is
//! served from memory and written behind to the file in batches (see [`sqlite`]).

pub mod sqlite;

pub use sqlite::{GROUP_DELAY, SqliteLocations, StoreFlusher};
