//! What a PostgreSQL node's readings become in CloudWatch
//! (`NineLives/Postgres`). Being built.

pub const NAMESPACE: &str = "NineLives/Postgres";
