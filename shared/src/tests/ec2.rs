//! The adapter against canned EC2 responses (the SDK's own test HTTP
//! client), for what moto cannot show: throttling answered by retries,
//! EC2's error codes, and paging driven by `NextToken`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_http_client::test_util::infallible_client_fn;

use super::*;

type Requests = Arc<Mutex<Vec<String>>>;

/// An adapter whose HTTP client answers with `respond(body, n)` for the
/// n-th request whose form body is `body`, recording every body.
fn adapter(respond: impl Fn(&str, usize) -> (u16, String) + Send + Sync + 'static) -> (Ec2, Requests) {
    let seen: Requests = Arc::default();
    let log = seen.clone();
    let http = infallible_client_fn(move |request| {
        let body = String::from_utf8_lossy(request.body().bytes().unwrap_or_default()).into_owned();
        let n = {
            let mut log = log.lock().unwrap();
            log.push(body.clone());
            log.len()
        };
        let (status, xml) = respond(&body, n);
        http::Response::builder().status(status).body(xml).unwrap()
    });
    let config = aws_sdk_ec2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::for_tests())
        .retry_config(crate::aws::retry_config().with_initial_backoff(Duration::from_millis(1)))
        .timeout_config(crate::aws::timeout_config())
        .http_client(http)
        .build();
    (Ec2::new(Client::from_conf(config)), seen)
}

fn error(code: &str) -> String {
    format!(
        "<Response><Errors><Error><Code>{code}</Code><Message>{code} happened</Message></Error></Errors><RequestID>r-1</RequestID></Response>"
    )
}

const DELETED: &str = r#"<DeleteSnapshotResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r-2</requestId><return>true</return></DeleteSnapshotResponse>"#;

#[tokio::test]
async fn throttled_deletes_are_retried_until_they_succeed() {
    let (ec2, seen) = adapter(|_, n| {
        if n <= 3 {
            (503, error("RequestLimitExceeded"))
        } else {
            (200, DELETED.to_owned())
        }
    });
    assert_eq!(
        ec2.delete_snapshot("snap-1").await.unwrap(),
        DeleteOutcome::Deleted
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 4, "three throttled attempts, then success");
    assert!(
        seen.iter()
            .all(|b| b.contains("Action=DeleteSnapshot") && b.contains("SnapshotId=snap-1"))
    );
}

#[tokio::test]
async fn persistent_throttling_is_a_retryable_error_after_the_attempts() {
    let (ec2, seen) = adapter(|_, _| (503, error("RequestLimitExceeded")));
    let err = ec2.delete_snapshot("snap-1").await.unwrap_err();
    assert_eq!(seen.lock().unwrap().len(), crate::aws::MAX_ATTEMPTS as usize);
    assert!(err.is_retryable());
    assert_eq!(err.aws_code(), Some("RequestLimitExceeded"));
    assert!(err.to_string().contains("ec2:DeleteSnapshot"), "{err}");
}

const TAGGED: &str = r#"<CreateTagsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r-3</requestId><return>true</return></CreateTagsResponse>"#;

#[tokio::test]
async fn tagging_a_fresh_snapshot_waits_for_ec2_to_know_it() {
    let (ec2, seen) = adapter(|_, n| {
        if n <= 2 {
            (400, error("InvalidSnapshot.NotFound"))
        } else {
            (200, TAGGED.to_owned())
        }
    });
    let tags: Tags = [(tags::NAME.to_owned(), "main".to_owned())].into();
    ec2.tag_snapshots(&["snap-new".to_owned()], &tags).await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    assert!(
        seen[2].contains("Action=CreateTags") && seen[2].contains("ResourceId.1=snap-new"),
        "{}",
        seen[2]
    );
}

#[tokio::test]
async fn delete_outcomes_follow_ec2_error_codes() {
    for (code, expected) in [
        ("InvalidSnapshot.NotFound", Some(DeleteOutcome::NotFound)),
        (
            "InvalidSnapshot.InUse",
            Some(DeleteOutcome::InUse("InvalidSnapshot.InUse happened".into())),
        ),
        ("UnauthorizedOperation", None),
    ] {
        let (ec2, seen) = adapter(move |_, _| (400, error(code)));
        let got = ec2.delete_snapshot("snap-1").await;
        match expected {
            Some(outcome) => assert_eq!(got.unwrap(), outcome),
            None => {
                let err = got.unwrap_err();
                assert!(!err.is_retryable(), "{err}");
                assert_eq!(err.aws_code(), Some(code));
            }
        }
        assert_eq!(seen.lock().unwrap().len(), 1, "{code} is not retried");
    }
}

fn snapshot_item(id: &str, managed: bool) -> String {
    let tag = if managed {
        "<item><key>ninelives:managed-by</key><value>ninelives</value></item>"
    } else {
        "<item><key>owner</key><value>someone</value></item>"
    };
    format!(
        "<item><snapshotId>{id}</snapshotId><volumeId>vol-1</volumeId><status>completed</status>\
         <startTime>2026-11-24T12:00:00.000Z</startTime><tagSet>{tag}</tagSet></item>"
    )
}

#[tokio::test]
async fn managed_snapshots_follow_every_page_and_drop_unmanaged_answers() {
    let (ec2, seen) = adapter(|body, _| {
        let (items, next) = if body.contains("NextToken=page-3") {
            (vec![snapshot_item("snap-5", true)], "")
        } else if body.contains("NextToken=page-2") {
            (
                vec![snapshot_item("snap-3", true), snapshot_item("snap-4", false)],
                "<nextToken>page-3</nextToken>",
            )
        } else {
            (
                vec![snapshot_item("snap-1", true), snapshot_item("snap-2", true)],
                "<nextToken>page-2</nextToken>",
            )
        };
        (
            200,
            format!(
                r#"<DescribeSnapshotsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r</requestId><snapshotSet>{}</snapshotSet>{next}</DescribeSnapshotsResponse>"#,
                items.concat()
            ),
        )
    });
    let query = SnapshotQuery {
        tags: vec![(tags::TIER, "daily".to_owned())],
    };
    let got: Vec<String> = ec2
        .managed_snapshots(&query)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(got, ["snap-1", "snap-2", "snap-3", "snap-5"]);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    for body in seen.iter() {
        assert!(body.contains("MaxResults=1000"), "{body}");
        assert!(body.contains("Owner.1=self"), "{body}");
        assert!(
            body.contains("Filter.1.Name=tag%3Aninelives%3Amanaged-by"),
            "{body}"
        );
        assert!(body.contains("Filter.2.Name=tag%3Aninelives%3Atier"), "{body}");
    }
}
