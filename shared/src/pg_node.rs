//! PostgreSQL nodes through tokio-postgres (being built: publish-metrics
//! readings and snapshot-volumes' backup mode).
