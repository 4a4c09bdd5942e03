//! Benchmark (not a test): how long redis-failover takes from invocation to
//! the new head accepting writes, against real redis-server processes on
//! loopback and the local AWS. Each run builds a fresh three-node chain
//! (127.0.0.2-4, port 17190), kills the head, then times the handler and a
//! client that follows the cluster record until a SET succeeds.
//!
//! Run: `scripts/local-aws.sh start && eval "$(scripts/local-aws.sh env)" &&
//! cargo bench -p ninelives-tests --bench failover -- [RUNS]` (default 9).
//! Prints a markdown table: median, min and max, beside Redis Sentinel's
//! default detection time (down-after-milliseconds 30000), which Sentinel
//! spends before its failover even starts.

use std::time::{Duration, Instant};

use ninelives_tests::redis::{RedisServer, redis_instance};
use ninelives_tests::{env, event, hosted_zone, sdk, unique};
use redis_failover::{Config, RedisFailover};
use serde_json::json;
use shared::chain::model::ReplicationRole;
use shared::ec2::Ec2 as Ec2Adapter;
use shared::notify::SnsNotifier;
use shared::redis_node::RedisNodes;
use shared::route53::Route53;

const HOSTS: [&str; 3] = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
const PORT: u16 = 17190;
const SENTINEL_DETECTION: Duration = Duration::from_secs(30);

struct Run {
    handler: Duration,
    writable: Duration,
}

async fn one_run() -> Run {
    let sdk = sdk("me-south-1").await;
    let domain = format!("b{}.test", unique());
    let zone = hosted_zone(&sdk, &domain).await;
    let cluster = format!("kate.{domain}");
    let mut servers: Vec<RedisServer> = HOSTS.iter().map(|h| RedisServer::start(h, PORT, None)).collect();
    for host in HOSTS {
        redis_instance(&sdk, &cluster, &format!("{host}:{PORT}")).await;
    }
    for i in 1..HOSTS.len() {
        servers[i].cmd(&["REPLICAOF", HOSTS[i - 1], &PORT.to_string()]);
        servers[i].wait_for("link up", Duration::from_secs(10), |r| {
            matches!(r.role, ReplicationRole::Replica { link_up: true, .. })
        });
    }
    let zone_env: &'static str = Box::leak(zone.clone().into_boxed_str());
    let config = Config::from_env(&env(&[("HOSTED_ZONE_ID", zone_env)])).expect("config");
    let handler = RedisFailover::with(
        config.clone(),
        RedisNodes::new(config.redis.clone()),
        Route53::from_conf(&sdk, zone.clone()),
        Ec2Adapter::from_conf(&sdk),
        SnsNotifier::from_conf(&sdk, None),
    );
    let payload = json!({ "cluster": cluster });
    handler
        .handle_event(event(payload.clone(), Duration::from_secs(60)))
        .await
        .expect("first check writes the records");
    servers[0].cmd(&["SET", "before", "1"]);
    servers[0].kill();

    let route53 = aws_sdk_route53::Client::new(&sdk);
    let started = Instant::now();
    handler
        .handle_event(event(payload, Duration::from_secs(60)))
        .await
        .expect("failover");
    let handler_done = started.elapsed();
    // A client: look the record up, write there, until a write succeeds.
    loop {
        let sets = route53
            .list_resource_record_sets()
            .hosted_zone_id(&zone)
            .start_record_name(&cluster)
            .max_items(1)
            .send()
            .await
            .expect("ListResourceRecordSets");
        let head = sets
            .resource_record_sets()
            .first()
            .and_then(|r| r.resource_records().first())
            .map(|v| v.value().to_owned())
            .unwrap_or_default();
        if let Some(server) = HOSTS.iter().position(|h| *h == head).map(|i| &servers[i])
            && server.try_cmd(&["SET", "after", "1"]).is_ok()
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no writable head after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Run {
        handler: handler_done,
        writable: started.elapsed(),
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(9)
        .max(1);
    let mut results = Vec::new();
    for i in 0..runs {
        let r = one_run().await;
        eprintln!(
            "run {}: handler {}, writable {}",
            i + 1,
            ms(r.handler),
            ms(r.writable)
        );
        results.push(r);
    }
    let writable: Vec<Duration> = results.iter().map(|r| r.writable).collect();
    let handler: Vec<Duration> = results.iter().map(|r| r.handler).collect();
    let med = median(writable.clone());
    println!("| measure ({runs} runs) | median | min | max |");
    println!("|---|---|---|---|");
    println!(
        "| redis-failover handler (invocation to result) | {} | {} | {} |",
        ms(median(handler.clone())),
        ms(*handler.iter().min().expect("runs >= 1")),
        ms(*handler.iter().max().expect("runs >= 1"))
    );
    println!(
        "| invocation to the new head accepting writes | {} | {} | {} |",
        ms(med),
        ms(*writable.iter().min().expect("runs >= 1")),
        ms(*writable.iter().max().expect("runs >= 1"))
    );
    println!(
        "| Redis Sentinel default detection alone (down-after-milliseconds) | {} | | |",
        ms(SENTINEL_DETECTION)
    );
    println!(
        "\nSentinel's detection alone is {:.0}x the whole ninelives failover measured here.",
        SENTINEL_DETECTION.as_secs_f64() / med.as_secs_f64()
    );
}
