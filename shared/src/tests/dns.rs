//! Unit tests of `dns`.

use super::*;

#[test]
fn record_names_are_checked_and_normalised() {
    assert_eq!(
        record_name("Kate.Example.COM.").as_deref(),
        Ok("kate.example.com")
    );
    assert_eq!(
        record_name("_es.kate.example.com").as_deref(),
        Ok("_es.kate.example.com")
    );
    for bad in [
        "",
        "localhost",
        "a..b",
        "kate example.com",
        &format!("{}.com", "a".repeat(64)),
    ] {
        assert!(record_name(bad).is_err(), "{bad:?}");
    }
    assert!(record_name(&format!("{}.com", "a.".repeat(130))).is_err());
}

#[test]
fn targets_are_a_for_addresses_and_cname_for_names() {
    assert_eq!(target("10.0.0.1"), Ok(("A", "10.0.0.1".to_owned())));
    assert_eq!(target("fd00::1"), Ok(("AAAA", "fd00::1".to_owned())));
    assert_eq!(
        target("ip-10-0-0-1.ec2.internal."),
        Ok(("CNAME", "ip-10-0-0-1.ec2.internal".to_owned()))
    );
    assert!(target("not a host").is_err());
}

#[test]
fn endpoint_hosts() {
    assert_eq!(endpoint_host("10.0.0.1:6379").as_deref(), Ok("10.0.0.1"));
    assert_eq!(
        endpoint_host("redis-1.internal").as_deref(),
        Ok("redis-1.internal")
    );
    assert_eq!(endpoint_host("[fd00::1]:6379").as_deref(), Ok("fd00::1"));
    assert_eq!(endpoint_host("fd00::1").as_deref(), Ok("fd00::1"));
    assert!(endpoint_host(":6379").is_err());
    assert!(endpoint_host(" ").is_err());
}

#[test]
fn weighted_records_and_their_comparison() {
    let r = weighted_record("Search.Example.com", "i-1234567890abcdef0", "10.0.0.1", 60).unwrap();
    assert_eq!(r.name, "search.example.com");
    assert_eq!(r.record_type, "A");
    assert_eq!(r.weight, Some(DEFAULT_WEIGHT));
    assert_eq!(r.set_identifier.as_deref(), Some("i-1234567890abcdef0"));

    let mut listed = r.clone();
    listed.name = "search.example.com.".into();
    assert!(same_record(&r, &listed));
    listed.ttl = Some(300);
    assert!(!same_record(&r, &listed));

    let cname = weighted_record("search.example.com", "i-1", "Host.Internal", 60).unwrap();
    let mut listed = cname.clone();
    listed.values = vec!["host.internal.".into()];
    assert!(same_record(&cname, &listed));
}

#[test]
fn hosted_zone_ids() {
    assert_eq!(hosted_zone_id("/hostedzone/Z0123ABC").as_deref(), Ok("Z0123ABC"));
    assert_eq!(hosted_zone_id("Z1D633PJN98FT9").as_deref(), Ok("Z1D633PJN98FT9"));
    for bad in ["", "z123", "example.com", "Z123/../x"] {
        assert!(hosted_zone_id(bad).is_err(), "{bad:?}");
    }
}
