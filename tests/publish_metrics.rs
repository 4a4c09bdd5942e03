//! publish-metrics end to end (being built).
