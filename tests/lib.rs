//! End-to-end tests of the berth binaries live in this package's test targets.
