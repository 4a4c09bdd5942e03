//! PostgreSQL adapter and backup mode against a real primary and replica (being built).
