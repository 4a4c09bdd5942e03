use chrono::TimeZone;

use super::*;

fn datum(namespace: &'static str, name: &str, value: f64) -> Datum {
    Datum {
        namespace,
        name: name.to_owned(),
        dimensions: vec![
            ("cluster".into(), "kate.example.com".into()),
            ("node".into(), "i-0123456789abcdef0".into()),
        ],
        value,
        unit: Unit::Count,
        timestamp: Utc
            .with_ymd_and_hms(2026, 11, 25, 10, 0, 0)
            .single()
            .expect("a valid time"),
    }
}

#[test]
fn one_call_per_namespace_while_it_fits() {
    let data = vec![
        datum("NineLives/Redis", "UsedMemory", 1.0),
        datum("NineLives/MongoDB", "HealthyHostCount", 2.0),
        datum("NineLives/Redis", "NodeUp", 1.0),
    ];
    let (batches, rejected) = batches(data);
    assert!(rejected.is_empty());
    let shape: Vec<(&str, Vec<&str>)> = batches
        .iter()
        .map(|b| (b.namespace, b.data.iter().map(|d| d.name.as_str()).collect()))
        .collect();
    assert_eq!(
        shape,
        [
            ("NineLives/MongoDB", vec!["HealthyHostCount"]),
            ("NineLives/Redis", vec!["UsedMemory", "NodeUp"])
        ]
    );
}

#[test]
fn a_thousand_datums_per_call() {
    let data: Vec<Datum> = (0..2500)
        .map(|i| datum("NineLives/Redis", "UsedMemory", f64::from(i)))
        .collect();
    let (batches, _) = batches(data);
    let sizes: Vec<usize> = batches.iter().map(|b| b.data.len()).collect();
    assert_eq!(sizes, [1000, 1000, 500]);
    // Order kept.
    assert_eq!(batches[1].data[0].value, 1000.0);
}

#[test]
fn large_datums_are_split_by_bytes_before_the_count() {
    let big = |i: i32| Datum {
        dimensions: (0..30).map(|d| (format!("d{d}"), "v".repeat(900))).collect(),
        ..datum("NineLives/Postgres", "TableSize", f64::from(i))
    };
    let data: Vec<Datum> = (0..100).map(big).collect();
    let per = data[0].wire_size();
    let (batches, rejected) = batches(data);
    assert!(rejected.is_empty());
    assert!(
        batches.len() > 1,
        "{} datums of ~{per} bytes fit no single MB",
        100
    );
    for b in &batches {
        let bytes: usize = b.data.iter().map(Datum::wire_size).sum();
        assert!(bytes <= MAX_BYTES, "{bytes}");
    }
    assert_eq!(batches.iter().map(|b| b.data.len()).sum::<usize>(), 100);
}

#[test]
fn values_cloudwatch_refuses_are_left_out_and_said() {
    let mut many = datum("NineLives/Redis", "X", 1.0);
    many.dimensions = (0..31).map(|d| (format!("d{d}"), "v".into())).collect();
    let mut empty_dim = datum("NineLives/Redis", "Y", 1.0);
    empty_dim.dimensions.push(("node".into(), String::new()));
    let data = vec![
        datum("NineLives/Redis", "Lag", f64::NAN),
        datum("NineLives/Redis", "Lag", f64::INFINITY),
        datum("NineLives/Redis", "Lag", 1e200),
        datum("NineLives/Redis", "", 1.0),
        many,
        empty_dim,
        datum("NineLives/Redis", "NodeUp", 0.0),
    ];
    let (batches, rejected) = batches(data);
    assert_eq!(rejected.len(), 6, "{rejected:?}");
    assert!(rejected[0].reason.contains("NaN"), "{:?}", rejected[0]);
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].data.len(), 1);
    assert_eq!(batches[0].data[0].name, "NodeUp");
}

#[test]
fn nothing_to_send_is_no_call() {
    assert_eq!(batches(Vec::new()), (Vec::new(), Vec::new()));
}

#[test]
fn a_dimension_cloudwatch_refuses_is_left_out_alone() {
    // CloudWatch refuses a whole PutMetricData for one such datum.
    let mut data: Vec<Datum> = (0..4)
        .map(|i| datum("NineLives/Postgres", "TableBytes", f64::from(i)))
        .collect();
    data[0].dimensions.push(("database".into(), "café".into()));
    data[1].dimensions.push(("database".into(), "   ".into()));
    data[2].dimensions.push((":database".into(), "x".into()));
    data[3].dimensions.push(("database".into(), "orders".into()));
    let (batches, rejected) = batches(data);
    assert_eq!(rejected.len(), 3, "{rejected:?}");
    assert!(rejected[0].reason.contains("ASCII"), "{:?}", rejected[0]);
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].data.len(), 1);
    assert_eq!(batches[0].data[0].value, 3.0);
}
