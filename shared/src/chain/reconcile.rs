//! Reconciling (being written).
