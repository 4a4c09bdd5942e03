//! Unit tests of `function`.

use super::*;

#[test]
fn not_implemented_is_a_non_retryable_error() {
    let e = not_implemented("redis-failover", "arrives with the Redis chain work");
    assert_eq!(e.error_type(), "NonRetryable.NotImplemented");
    assert!(e.to_string().starts_with("redis-failover is not implemented yet"));
}
