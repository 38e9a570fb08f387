//! The in-memory API server of the `fake-apiserver` crate, under the path the test suites know.
//!
//! In and out: see [`fake_apiserver`]; nothing is added here.

pub use fake_apiserver::*;
