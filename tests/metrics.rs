//! The CloudWatch adapter against the local AWS (moto, with the
//! `aws-sdk-cloudwatch` version it speaks): batches of datums land as
//! metrics that read back with their values, in as many calls as the
//! batching says.

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Statistic};
use chrono::Utc;
use ninelives_tests::{sdk, unique};
use shared::cloudwatch::CloudWatch;
use shared::metrics::{Datum, MetricsSink, Unit, batches};

const REGION: &str = "ap-northeast-3";

#[tokio::test]
async fn datums_read_back_and_large_sets_take_few_calls() {
    let sdk = sdk(REGION).await;
    let cluster = format!("kate-{}.example.com", unique());
    let now = Utc::now();
    let datum = |name: &str, node: &str, value: f64| Datum {
        namespace: "NineLives/Redis",
        name: name.to_owned(),
        dimensions: vec![
            ("cluster".into(), cluster.clone()),
            ("node".into(), node.to_owned()),
        ],
        value,
        unit: Unit::Count,
        timestamp: now,
    };
    // 2,400 datums of 1,200 nodes and one value CloudWatch would refuse.
    let mut data: Vec<Datum> = (0..1200)
        .flat_map(|i| {
            let node = format!("i-{i:017x}");
            [
                datum("NodeUp", &node, if i == 7 { 0.0 } else { 1.0 }),
                datum("ConnectedClients", &node, f64::from(i)),
            ]
        })
        .collect();
    data.push(datum("ConnectedClients", "i-bad", f64::NAN));
    let (calls, rejected) = batches(data);
    assert_eq!(calls.len(), 3, "2,400 datums: three calls of at most 1,000");
    assert_eq!(rejected.len(), 1);
    let sink = CloudWatch::from_conf(&sdk);
    for call in &calls {
        sink.put(call).await.expect("PutMetricData");
    }

    let client = aws_sdk_cloudwatch::Client::new(&sdk);
    let read = |name: &'static str, node: String| {
        let client = client.clone();
        let cluster = cluster.clone();
        async move {
            client
                .get_metric_statistics()
                .namespace("NineLives/Redis")
                .metric_name(name)
                .dimensions(Dimension::builder().name("cluster").value(cluster).build())
                .dimensions(Dimension::builder().name("node").value(node).build())
                .start_time(DateTime::from_secs(now.timestamp() - 120))
                .end_time(DateTime::from_secs(now.timestamp() + 120))
                .period(60)
                .statistics(Statistic::Minimum)
                .statistics(Statistic::SampleCount)
                .send()
                .await
                .expect("GetMetricStatistics")
                .datapoints()
                .iter()
                .map(|p| (p.minimum().unwrap_or(-1.0), p.sample_count().unwrap_or(0.0)))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(read("NodeUp", format!("i-{:017x}", 7)).await, [(0.0, 1.0)]);
    assert_eq!(read("NodeUp", format!("i-{:017x}", 8)).await, [(1.0, 1.0)]);
    assert_eq!(
        read("ConnectedClients", format!("i-{:017x}", 1199)).await,
        [(1199.0, 1.0)]
    );
    assert!(
        read("ConnectedClients", "i-bad".into()).await.is_empty(),
        "the NaN was never sent"
    );
}
