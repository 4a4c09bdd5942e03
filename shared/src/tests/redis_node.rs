//! Unit tests of `redis_node`: the settings' Debug, how unreadable INFO and
//! each kind of `redis` error map to [`NodeError`] (the integration tests in
//! `tests/redis_node.rs` do the same against real servers).

use std::error::Error as _;
use std::io;

use super::*;

fn endpoint() -> Endpoint {
    Endpoint::new("10.0.0.7", 6380)
}

fn settings(password: Option<&str>) -> RedisSettings {
    RedisSettings {
        connect_timeout: Duration::from_secs(2),
        command_timeout: Duration::from_secs(3),
        username: Some("ninelives".to_owned()),
        password: password.map(str::to_owned),
    }
}

#[test]
fn debug_never_shows_the_password() {
    let shown = format!("{:?}", settings(Some("s3cret-pa55")));
    assert!(!shown.contains("s3cret-pa55"), "{shown}");
    assert!(shown.contains(r#"password: Some("***")"#), "{shown}");
    assert!(shown.contains(r#"username: Some("ninelives")"#), "{shown}");
    assert!(shown.contains("connect_timeout: 2s"), "{shown}");
    assert!(shown.contains("command_timeout: 3s"), "{shown}");

    let nodes = format!("{:?}", RedisNodes::new(settings(Some("s3cret-pa55"))));
    assert!(!nodes.contains("s3cret-pa55"), "{nodes}");

    assert!(format!("{:?}", settings(None)).contains("password: None"));
}

#[test]
fn unreadable_info_is_malformed_and_names_the_node_and_the_field() {
    let err = read_replication(
        &endpoint(),
        "# Replication\r\nrole:master\r\nconnected_slaves:two\r\n",
    )
    .expect_err("malformed");
    match &err {
        NodeError::Malformed { endpoint: e, detail } => {
            assert_eq!(e, &endpoint());
            assert_eq!(
                detail,
                r#"connected_slaves is "two", expected a count (0 or more)"#
            );
        }
        other => panic!("expected Malformed, got {other:?}"),
    }
    assert!(!err.is_down());
    assert_eq!(
        err.to_string(),
        r#"10.0.0.7:6380 sent INFO replication that cannot be read: connected_slaves is "two", expected a count (0 or more)"#
    );

    assert!(matches!(
        read_replication(&endpoint(), ""),
        Err(NodeError::Malformed { detail, .. }) if detail == "the text is empty"
    ));
    assert!(read_replication(&endpoint(), "# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_replid:3d1c4b6e0b8f6a8d0e1f2a3b4c5d6e7f80918273\r\nmaster_replid2:0000000000000000000000000000000000000000\r\nmaster_repl_offset:42\r\n").is_ok());
}

/// The error the library returns for a RESP error reply `line`, as it
/// arrives on the wire.
fn reply(line: &str) -> RedisError {
    let value = redis::parse_redis_value(format!("{line}\r\n").as_bytes()).expect("a RESP error");
    value.extract_error().expect_err("an error reply")
}

fn kind(err: &NodeError) -> &'static str {
    match err {
        NodeError::Down { .. } => "down",
        NodeError::Auth { .. } => "auth",
        NodeError::Malformed { .. } => "malformed",
        NodeError::Command { .. } => "command",
    }
}

#[test]
fn unreachable_and_timed_out_nodes_are_down() {
    for io_kind in [
        io::ErrorKind::ConnectionRefused,
        io::ErrorKind::ConnectionReset,
        io::ErrorKind::BrokenPipe,
        io::ErrorKind::UnexpectedEof,
        io::ErrorKind::TimedOut,
        io::ErrorKind::HostUnreachable,
    ] {
        let err = classify(&endpoint(), INFO, io::Error::from(io_kind).into());
        assert!(err.is_down(), "{io_kind:?}: {err:?}");
    }
}

#[test]
fn loading_masterdown_and_busy_servers_are_down() {
    for line in [
        "-LOADING Redis is loading the dataset in memory",
        "-MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
        "-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
    ] {
        let err = classify(&endpoint(), INFO, reply(line));
        assert_eq!(kind(&err), "down", "{line}: {err:?}");
    }
}

#[test]
fn refused_credentials_are_auth() {
    for err in [
        reply("-NOAUTH Authentication required."),
        reply("-WRONGPASS invalid username-password pair or user is disabled."),
        RedisError::from((ErrorKind::AuthenticationFailed, "Password authentication failed")),
    ] {
        let shown = err.to_string();
        let err = classify(&endpoint(), REPLICAOF, err);
        assert_eq!(kind(&err), "auth", "{shown}: {err:?}");
        assert!(
            err.to_string()
                .starts_with("10.0.0.7:6380 refused authentication: "),
            "{err}"
        );
    }
}

#[test]
fn other_error_replies_are_command_errors_naming_the_command() {
    for (line, command) in [
        ("-ERR FAILOVER target HOST and PORT is not a replica.", FAILOVER),
        ("-ERR FAILOVER already in progress.", FAILOVER),
        (
            "-NOPERM this user has no permissions to run the 'replicaof' command",
            REPLICAOF,
        ),
        (
            "-ERR unknown command 'FAILOVER', with args beginning with: ",
            FAILOVER,
        ),
    ] {
        let err = classify(&endpoint(), command, reply(line));
        match &err {
            NodeError::Command { command: c, .. } => assert_eq!(*c, command),
            other => panic!("{line}: expected Command, got {other:?}"),
        }
        assert!(
            err.to_string()
                .starts_with(&format!("10.0.0.7:6380 refused {command}: ")),
            "{err}"
        );
    }
    // A reply the library cannot read: the node's state is unknown.
    let err = classify(
        &endpoint(),
        INFO,
        RedisError::from((ErrorKind::Parse, "invalid response")),
    );
    assert_eq!(kind(&err), "command");
}

#[test]
fn the_library_error_is_kept_as_the_source() {
    let err = classify(
        &endpoint(),
        INFO,
        reply("-LOADING Redis is loading the dataset in memory"),
    );
    let source = err.source().expect("a source");
    let redis = source
        .downcast_ref::<RedisError>()
        .expect("the RedisError itself");
    assert_eq!(redis.code(), Some("LOADING"));
    assert_eq!(redis.detail(), Some("Redis is loading the dataset in memory"));

    let err = classify(&endpoint(), INFO, io::Error::from(io::ErrorKind::TimedOut).into());
    let redis = err
        .source()
        .and_then(|s| s.downcast_ref::<RedisError>())
        .expect("RedisError");
    assert!(redis.is_timeout());
}
