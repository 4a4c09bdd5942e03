//! publish-metrics' run (being built).
