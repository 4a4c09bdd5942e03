//! Unit tests of `sqs`.

use super::*;

#[test]
fn only_fifo_queue_urls_are_taken() {
    for good in [
        "https://sqs.eu-west-1.amazonaws.com/123456789012/replset-tasks.fifo",
        "http://127.0.0.1:5000/123456789012/tasks.fifo",
    ] {
        assert_eq!(fifo_queue_url(good).as_deref(), Ok(good));
    }
    for (bad, why) in [
        (
            "https://sqs.eu-west-1.amazonaws.com/123456789012/replset-tasks",
            "FIFO",
        ),
        ("replset-tasks.fifo", "queue URL"),
        ("https://sqs.eu-west-1.amazonaws.com/", "no queue name"),
    ] {
        let err = fifo_queue_url(bad).expect_err(bad);
        assert!(err.contains(why), "{bad}: {err}");
    }
}
