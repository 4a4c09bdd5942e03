//! Unit tests of `chain::info`, on `INFO replication` texts captured from
//! redis-server 7.0.15 (throwaway servers on 127.0.0.2, a master and
//! replicas in each state), byte for byte with their CRLF line ends, and on
//! malformed texts.

use super::*;
use crate::chain::model::NO_REPLID;

/// A master that never had a replica.
const MASTER: &str = "\
# Replication\r\n\
role:master\r\n\
connected_slaves:0\r\n\
master_failover_state:no-failover\r\n\
master_replid:168764ed6bfe690132c87dea697dc7b74f725511\r\n\
master_replid2:0000000000000000000000000000000000000000\r\n\
master_repl_offset:0\r\n\
second_repl_offset:-1\r\n\
repl_backlog_active:0\r\n\
repl_backlog_size:1048576\r\n\
repl_backlog_first_byte_offset:0\r\n\
repl_backlog_histlen:0\r\n\
";

/// A master with one replica online.
const MASTER_WITH_REPLICA: &str = "\
# Replication\r\n\
role:master\r\n\
connected_slaves:1\r\n\
slave0:ip=127.0.0.1,port=17091,state=online,offset=14,lag=0\r\n\
master_failover_state:no-failover\r\n\
master_replid:f84fa38c450378aa24bb221642162775e06a37bd\r\n\
master_replid2:0000000000000000000000000000000000000000\r\n\
master_repl_offset:14\r\n\
second_repl_offset:-1\r\n\
repl_backlog_active:1\r\n\
repl_backlog_size:1048576\r\n\
repl_backlog_first_byte_offset:1\r\n\
repl_backlog_histlen:14\r\n\
";

/// A replica whose link to its master is up.
const REPLICA_UP: &str = "\
# Replication\r\n\
role:slave\r\n\
master_host:127.0.0.2\r\n\
master_port:17090\r\n\
master_link_status:up\r\n\
master_last_io_seconds_ago:6\r\n\
master_sync_in_progress:0\r\n\
slave_read_repl_offset:14\r\n\
slave_repl_offset:14\r\n\
slave_priority:100\r\n\
slave_read_only:1\r\n\
replica_announced:1\r\n\
connected_slaves:0\r\n\
master_failover_state:no-failover\r\n\
master_replid:f84fa38c450378aa24bb221642162775e06a37bd\r\n\
master_replid2:0000000000000000000000000000000000000000\r\n\
master_repl_offset:14\r\n\
second_repl_offset:-1\r\n\
repl_backlog_active:1\r\n\
repl_backlog_size:1048576\r\n\
repl_backlog_first_byte_offset:15\r\n\
repl_backlog_histlen:0\r\n\
";

/// A replica receiving its first full copy (the master was slowed with `rdb-key-save-delay`).
const REPLICA_SYNCING: &str = "\
# Replication\r\n\
role:slave\r\n\
master_host:127.0.0.2\r\n\
master_port:17090\r\n\
master_link_status:down\r\n\
master_last_io_seconds_ago:-1\r\n\
master_sync_in_progress:1\r\n\
slave_read_repl_offset:0\r\n\
slave_repl_offset:0\r\n\
master_sync_total_bytes:-1\r\n\
master_sync_read_bytes:0\r\n\
master_sync_left_bytes:-1\r\n\
master_sync_perc:-0.00\r\n\
master_sync_last_io_seconds_ago:3\r\n\
master_link_down_since_seconds:-1\r\n\
slave_priority:100\r\n\
slave_read_only:1\r\n\
replica_announced:1\r\n\
connected_slaves:0\r\n\
master_failover_state:no-failover\r\n\
master_replid:db8e3ecec066bda7691c2244e09bcd642bf0e98e\r\n\
master_replid2:0000000000000000000000000000000000000000\r\n\
master_repl_offset:0\r\n\
second_repl_offset:-1\r\n\
repl_backlog_active:0\r\n\
repl_backlog_size:1048576\r\n\
repl_backlog_first_byte_offset:0\r\n\
repl_backlog_histlen:0\r\n\
";

/// A replica told to follow an address where nothing listens.
const REPLICA_NEVER_CONNECTED: &str = "\
# Replication\r\n\
role:slave\r\n\
master_host:127.0.0.2\r\n\
master_port:17099\r\n\
master_link_status:down\r\n\
master_last_io_seconds_ago:-1\r\n\
master_sync_in_progress:0\r\n\
slave_read_repl_offset:0\r\n\
slave_repl_offset:0\r\n\
master_link_down_since_seconds:-1\r\n\
slave_priority:100\r\n\
slave_read_only:1\r\n\
replica_announced:1\r\n\
connected_slaves:0\r\n\
master_failover_state:no-failover\r\n\
master_replid:db8e3ecec066bda7691c2244e09bcd642bf0e98e\r\n\
master_replid2:0000000000000000000000000000000000000000\r\n\
master_repl_offset:0\r\n\
second_repl_offset:-1\r\n\
repl_backlog_active:0\r\n\
repl_backlog_size:1048576\r\n\
repl_backlog_first_byte_offset:0\r\n\
repl_backlog_histlen:0\r\n\
";

/// A replica three seconds after its master was killed (SIGKILL); the master had been through an aborted FAILOVER, hence the second replication id.
const REPLICA_LINK_DOWN: &str = "\
# Replication\r\n\
role:slave\r\n\
master_host:127.0.0.2\r\n\
master_port:17090\r\n\
master_link_status:down\r\n\
master_last_io_seconds_ago:-1\r\n\
master_sync_in_progress:0\r\n\
slave_read_repl_offset:3477\r\n\
slave_repl_offset:3477\r\n\
master_link_down_since_seconds:3\r\n\
slave_priority:100\r\n\
slave_read_only:1\r\n\
replica_announced:1\r\n\
connected_slaves:0\r\n\
master_failover_state:no-failover\r\n\
master_replid:ec40e75a70d23f744b486ed6c8b126f1cd7ed091\r\n\
master_replid2:f84fa38c450378aa24bb221642162775e06a37bd\r\n\
master_repl_offset:3477\r\n\
second_repl_offset:3428\r\n\
repl_backlog_active:1\r\n\
repl_backlog_size:1048576\r\n\
repl_backlog_first_byte_offset:29\r\n\
repl_backlog_histlen:3449\r\n\
";

/// A master during `FAILOVER TO` while its target is SIGSTOPped (`waiting-for-sync`).
const MASTER_FAILOVER_WAITING: &str = "\
# Replication\r\n\
role:master\r\n\
connected_slaves:3\r\n\
slave0:ip=127.0.0.1,port=17091,state=online,offset=3377,lag=0\r\n\
slave1:ip=127.0.0.1,port=17092,state=online,offset=3377,lag=1\r\n\
slave2:ip=127.0.0.1,port=17093,state=online,offset=3377,lag=1\r\n\
master_failover_state:waiting-for-sync\r\n\
master_replid:f84fa38c450378aa24bb221642162775e06a37bd\r\n\
master_replid2:0000000000000000000000000000000000000000\r\n\
master_repl_offset:3427\r\n\
second_repl_offset:-1\r\n\
repl_backlog_active:1\r\n\
repl_backlog_size:1048576\r\n\
repl_backlog_first_byte_offset:1\r\n\
repl_backlog_histlen:3427\r\n\
";

/// A master that handed over with `FAILOVER TO` a target it cannot reach: a replica, `failover-in-progress`, until `FAILOVER ABORT`.
const OLD_MASTER_FAILING_OVER: &str = "\
# Replication\r\n\
role:slave\r\n\
master_host:127.0.0.1\r\n\
master_port:17092\r\n\
master_link_status:down\r\n\
master_last_io_seconds_ago:-1\r\n\
master_sync_in_progress:0\r\n\
slave_read_repl_offset:3427\r\n\
slave_repl_offset:3427\r\n\
master_link_down_since_seconds:-1\r\n\
slave_priority:100\r\n\
slave_read_only:1\r\n\
replica_announced:1\r\n\
connected_slaves:3\r\n\
slave0:ip=127.0.0.1,port=17091,state=online,offset=3427,lag=0\r\n\
slave1:ip=127.0.0.1,port=17092,state=online,offset=3427,lag=0\r\n\
slave2:ip=127.0.0.1,port=17093,state=online,offset=3427,lag=0\r\n\
master_failover_state:failover-in-progress\r\n\
master_replid:f84fa38c450378aa24bb221642162775e06a37bd\r\n\
master_replid2:0000000000000000000000000000000000000000\r\n\
master_repl_offset:3427\r\n\
second_repl_offset:-1\r\n\
repl_backlog_active:1\r\n\
repl_backlog_size:1048576\r\n\
repl_backlog_first_byte_offset:1\r\n\
repl_backlog_histlen:3427\r\n\
";

/// A replica promoted with `REPLICAOF NO ONE`.
const PROMOTED: &str = "\
# Replication\r\n\
role:master\r\n\
connected_slaves:0\r\n\
master_failover_state:no-failover\r\n\
master_replid:c0eda523bab738786ceef1f83e25c511f52eb0d3\r\n\
master_replid2:ec40e75a70d23f744b486ed6c8b126f1cd7ed091\r\n\
master_repl_offset:3477\r\n\
second_repl_offset:3478\r\n\
repl_backlog_active:1\r\n\
repl_backlog_size:1048576\r\n\
repl_backlog_first_byte_offset:29\r\n\
repl_backlog_histlen:3449\r\n\
";

fn replica_role(replication: &Replication) -> (&str, u16, bool, Option<u64>, bool, i64) {
    match &replication.role {
        ReplicationRole::Replica {
            master_host,
            master_port,
            link_up,
            link_down_seconds,
            sync_in_progress,
            replica_offset,
        } => (
            master_host.as_str(),
            *master_port,
            *link_up,
            *link_down_seconds,
            *sync_in_progress,
            *replica_offset,
        ),
        ReplicationRole::Master => panic!("expected a replica, got {replication:?}"),
    }
}

#[test]
fn a_fresh_master() {
    assert_eq!(
        parse(MASTER),
        Ok(Replication {
            role: ReplicationRole::Master,
            connected_replicas: 0,
            replid: "168764ed6bfe690132c87dea697dc7b74f725511".to_owned(),
            replid2: NO_REPLID.to_owned(),
            offset: 0,
            failover_state: None,
        })
    );
}

#[test]
fn a_master_counts_its_replicas_and_ignores_their_lines() {
    let replication = parse(MASTER_WITH_REPLICA).unwrap();
    assert!(replication.is_master());
    assert_eq!(replication.connected_replicas, 1);
    assert_eq!(replication.offset, 14);
    assert_eq!(replication.data_offset(), 14);
    assert_eq!(replication.replid, "f84fa38c450378aa24bb221642162775e06a37bd");
}

#[test]
fn a_replica_with_its_link_up() {
    let replication = parse(REPLICA_UP).unwrap();
    assert_eq!(
        replica_role(&replication),
        ("127.0.0.2", 17090, true, None, false, 14)
    );
    assert_eq!(replication.connected_replicas, 0);
    // A replica shares its master's history.
    assert_eq!(replication.replid, "f84fa38c450378aa24bb221642162775e06a37bd");
    assert_eq!(replication.offset, 14);
    assert_eq!(replication.failover_state, None);
}

#[test]
fn a_replica_whose_master_went_away_says_since_when() {
    let replication = parse(REPLICA_LINK_DOWN).unwrap();
    assert_eq!(
        replica_role(&replication),
        ("127.0.0.2", 17090, false, Some(3), false, 3477)
    );
    assert_eq!(replication.replid, "ec40e75a70d23f744b486ed6c8b126f1cd7ed091");
    assert_eq!(replication.replid2, "f84fa38c450378aa24bb221642162775e06a37bd");
}

#[test]
fn a_replica_that_never_connected_has_no_down_time() {
    // Redis 7 reports master_link_down_since_seconds:-1.
    let replication = parse(REPLICA_NEVER_CONNECTED).unwrap();
    assert_eq!(
        replica_role(&replication),
        ("127.0.0.2", 17099, false, None, false, 0)
    );
}

#[test]
fn a_replica_receiving_its_first_copy_is_syncing() {
    let replication = parse(REPLICA_SYNCING).unwrap();
    assert_eq!(
        replica_role(&replication),
        ("127.0.0.2", 17090, false, None, true, 0)
    );
}

#[test]
fn a_failover_under_way_is_reported_and_no_failover_is_none() {
    let waiting = parse(MASTER_FAILOVER_WAITING).unwrap();
    assert!(waiting.is_master());
    assert_eq!(waiting.connected_replicas, 3);
    assert_eq!(waiting.failover_state.as_deref(), Some("waiting-for-sync"));

    let handing_over = parse(OLD_MASTER_FAILING_OVER).unwrap();
    assert_eq!(
        replica_role(&handing_over),
        ("127.0.0.1", 17092, false, None, false, 3427)
    );
    assert_eq!(
        handing_over.failover_state.as_deref(),
        Some("failover-in-progress")
    );
    assert_eq!(handing_over.connected_replicas, 3);

    for text in [
        MASTER,
        MASTER_WITH_REPLICA,
        REPLICA_UP,
        REPLICA_LINK_DOWN,
        PROMOTED,
    ] {
        assert_eq!(parse(text).unwrap().failover_state, None, "{text}");
    }
}

#[test]
fn a_promoted_replica_remembers_the_history_it_continued() {
    let replication = parse(PROMOTED).unwrap();
    assert!(replication.is_master());
    assert_eq!(replication.replid, "c0eda523bab738786ceef1f83e25c511f52eb0d3");
    assert_eq!(replication.replid2, "ec40e75a70d23f744b486ed6c8b126f1cd7ed091");
    assert_eq!(replication.offset, 3477);
}

#[test]
fn lf_line_ends_and_a_missing_header_read_the_same() {
    for text in [
        MASTER,
        MASTER_WITH_REPLICA,
        REPLICA_UP,
        REPLICA_SYNCING,
        REPLICA_NEVER_CONNECTED,
        REPLICA_LINK_DOWN,
        MASTER_FAILOVER_WAITING,
        OLD_MASTER_FAILING_OVER,
        PROMOTED,
    ] {
        let expected = parse(text).unwrap();
        assert_eq!(parse(&text.replace("\r\n", "\n")), Ok(expected.clone()), "{text}");
        let headless = text.replace("# Replication\r\n", "");
        assert_eq!(parse(&headless), Ok(expected.clone()), "{text}");
        // No final line end, as a trimmed reply would come.
        assert_eq!(parse(text.trim_end()), Ok(expected), "{text}");
    }
}

#[test]
fn unknown_keys_other_sections_and_blank_lines_are_ignored() {
    let text = format!(
        "# Server\r\nredis_version:9.9.9\r\n\r\n{}new_field_from_the_future:yes\r\nnot a key value line\r\n\r\n",
        REPLICA_UP
    );
    assert_eq!(parse(&text), parse(REPLICA_UP));
}

#[test]
fn the_newer_word_replica_is_accepted_for_slave() {
    let text = REPLICA_UP.replace("role:slave", "role:replica");
    assert_eq!(parse(&text), parse(REPLICA_UP));
}

#[test]
fn a_master_without_a_failover_state_is_an_older_redis() {
    let text = MASTER.replace("master_failover_state:no-failover\r\n", "");
    assert_eq!(parse(&text), parse(MASTER));
}

#[test]
fn empty_text_is_an_error() {
    for text in ["", "\r\n", "  \n\n"] {
        assert_eq!(parse(text), Err("the text is empty".to_owned()), "{text:?}");
    }
    // A header alone names the first field it lacks.
    assert_eq!(parse("# Replication\r\n"), Err("role is missing".to_owned()));
}

/// `parse(text)` fails with an error that mentions every one of `words`.
#[track_caller]
fn fails_naming(text: &str, words: &[&str]) {
    match parse(text) {
        Ok(replication) => panic!("expected an error naming {words:?}, parsed {replication:?}"),
        Err(message) => {
            for word in words {
                assert!(message.contains(word), "{message:?} does not name {word:?}");
            }
        }
    }
}

#[test]
fn every_required_field_of_a_master_is_required() {
    for field in [
        "role",
        "connected_slaves",
        "master_replid",
        "master_replid2",
        "master_repl_offset",
    ] {
        let text: String = MASTER
            .split_inclusive("\r\n")
            .filter(|line| !line.starts_with(&format!("{field}:")))
            .collect();
        assert_eq!(parse(&text), Err(format!("{field} is missing")));
    }
}

#[test]
fn every_required_field_of_a_replica_is_required() {
    for (text, field) in [
        (REPLICA_UP, "master_host"),
        (REPLICA_UP, "master_port"),
        (REPLICA_UP, "master_link_status"),
        (REPLICA_UP, "master_sync_in_progress"),
        (REPLICA_UP, "slave_repl_offset"),
        (REPLICA_LINK_DOWN, "master_link_down_since_seconds"),
    ] {
        let text: String = text
            .split_inclusive("\r\n")
            .filter(|line| !line.starts_with(&format!("{field}:")))
            .collect();
        assert_eq!(parse(&text), Err(format!("{field} is missing")));
    }
}

#[test]
fn an_unknown_role_is_an_error() {
    fails_naming(
        &MASTER.replace("role:master", "role:sentinel"),
        &["role", "\"sentinel\""],
    );
    fails_naming(&MASTER.replace("role:master", "role:"), &["role", "\"\""]);
    fails_naming(
        &MASTER.replace("role:master", "role:Master"),
        &["role", "\"Master\""],
    );
}

#[test]
fn a_non_number_where_a_number_is_needed_is_an_error() {
    for (text, from, to, words) in [
        (
            MASTER,
            "connected_slaves:0",
            "connected_slaves:many",
            &["connected_slaves", "\"many\""][..],
        ),
        (
            MASTER,
            "connected_slaves:0",
            "connected_slaves:-1",
            &["connected_slaves", "\"-1\""],
        ),
        (
            MASTER,
            "master_repl_offset:0",
            "master_repl_offset:",
            &["master_repl_offset", "\"\""],
        ),
        (
            MASTER,
            "master_repl_offset:0",
            "master_repl_offset:1.5",
            &["master_repl_offset", "\"1.5\""],
        ),
        (
            REPLICA_UP,
            "master_port:17090",
            "master_port:http",
            &["master_port", "\"http\""],
        ),
        (
            REPLICA_UP,
            "master_port:17090",
            "master_port:70000",
            &["master_port", "\"70000\""],
        ),
        (
            REPLICA_UP,
            "slave_repl_offset:14",
            "slave_repl_offset:x14",
            &["slave_repl_offset", "\"x14\""],
        ),
        (
            REPLICA_LINK_DOWN,
            "master_link_down_since_seconds:3",
            "master_link_down_since_seconds:soon",
            &["master_link_down_since_seconds", "\"soon\""],
        ),
        (
            REPLICA_LINK_DOWN,
            "master_link_down_since_seconds:3",
            "master_link_down_since_seconds:-7",
            &["master_link_down_since_seconds", "-7"],
        ),
    ] {
        assert!(text.contains(from), "{from}");
        fails_naming(&text.replace(from, to), words);
    }
}

#[test]
fn flags_and_link_status_take_only_their_values() {
    fails_naming(
        &REPLICA_UP.replace("master_link_status:up", "master_link_status:connecting"),
        &["master_link_status", "\"connecting\""],
    );
    fails_naming(
        &REPLICA_UP.replace("master_sync_in_progress:0", "master_sync_in_progress:yes"),
        &["master_sync_in_progress", "\"yes\""],
    );
    fails_naming(
        &REPLICA_UP.replace("master_sync_in_progress:0", "master_sync_in_progress:2"),
        &["master_sync_in_progress", "\"2\""],
    );
    fails_naming(
        &REPLICA_UP.replace("master_host:127.0.0.2", "master_host:"),
        &["master_host", "empty"],
    );
    fails_naming(
        &MASTER.replace("master_failover_state:no-failover", "master_failover_state:"),
        &["master_failover_state", "empty"],
    );
}

#[test]
fn a_down_since_time_is_read_only_when_the_link_is_down() {
    // An up link with a stray down-since field (no Redis writes one) is up.
    let text = REPLICA_UP.replace(
        "slave_priority:100",
        "master_link_down_since_seconds:12\r\nslave_priority:100",
    );
    assert_eq!(parse(&text), parse(REPLICA_UP));
}

#[test]
fn replication_ids_are_forty_hex_digits() {
    fails_naming(
        &MASTER.replace("168764ed6bfe690132c87dea697dc7b74f725511", "168764ed"),
        &["master_replid", "\"168764ed\""],
    );
    fails_naming(
        &MASTER.replace(NO_REPLID, &"z".repeat(40)),
        &["master_replid2", &"z".repeat(40)],
    );
    fails_naming(
        &MASTER.replace("168764ed6bfe690132c87dea697dc7b74f725511", ""),
        &["master_replid", "\"\""],
    );
}

#[test]
fn a_field_given_twice_is_an_error() {
    fails_naming(
        &format!("{MASTER}role:slave\r\n"),
        &["role", "twice", "\"master\"", "\"slave\""],
    );
}

#[test]
fn text_that_is_not_info_names_the_first_missing_field() {
    assert_eq!(
        parse("-ERR unknown command\r\n"),
        Err("role is missing".to_owned())
    );
    assert_eq!(parse("hello world"), Err("role is missing".to_owned()));
}
