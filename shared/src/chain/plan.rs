//! Planning (being written).
