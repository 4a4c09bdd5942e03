//! Unit tests of the PostgreSQL backup-mode tags and of the hooks' paths
//! that need no server.

use std::sync::Mutex;

use super::*;
use crate::backup::select::Target;
use crate::chain::model::Endpoint;

/// A real PostgreSQL 15 `backup_label`, as `pg_backup_stop` returns it.
const LABEL: &str = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n\
CHECKPOINT LOCATION: 0/2000060\n\
BACKUP METHOD: streamed\n\
BACKUP FROM: primary\n\
START TIME: 2026-11-24 03:00:01 UTC\n\
LABEL: ninelives db.example.com i-0123456789abcdef0\n\
START TIMELINE: 1\n";

fn allowed(v: &str) -> bool {
    v.chars()
        .all(|c| c.is_ascii_alphanumeric() || " +-=._:/@".contains(c))
}

#[test]
fn postgres_label_tags_round_trip_exactly() {
    let tags = label_tags(LABEL, "0/2000138");
    assert_eq!(tags[tags::PG_BACKUP_STOP_LSN], "0/2000138");
    assert!(tags.contains_key(tags::PG_BACKUP_LABEL));
    assert!(
        tags[tags::PG_BACKUP_LABEL].starts_with("START WAL LOCATION: 0/2000028 @28file"),
        "readable in the console: {}",
        tags[tags::PG_BACKUP_LABEL]
    );
    for (key, value) in &tags {
        assert!(value.chars().count() <= 256, "{key}: {} characters", value.len());
        assert!(allowed(value), "{key}: {value:?}");
    }
    assert_eq!(label_from_tags(&tags).as_deref(), Some(LABEL));
}

#[test]
fn postgres_long_labels_are_split_over_numbered_keys_never_inside_an_escape() {
    // Escapes everywhere, multi-byte characters, the escape sign itself.
    let text = format!("{LABEL}{}", "Ünïcödé @ (x)\n\t".repeat(40));
    let tags = label_tags(&text, "1/0");
    let parts: Vec<&String> = (1..)
        .map_while(|n| tags.get(&part_key(tags::PG_BACKUP_LABEL, n)))
        .collect();
    assert!(parts.len() >= 5, "{} parts", parts.len());
    assert_eq!(
        tags.len(),
        parts.len() + 1,
        "parts and the stop LSN only: {tags:?}"
    );
    assert!(tags.contains_key("ninelives:pg-backup-label-2"));
    for part in &parts {
        assert!(part.len() <= 256 && allowed(part), "{part:?}");
        // Each part decodes on its own: no escape was cut.
        assert!(unescape(part).is_some(), "{part:?}");
    }
    assert!(
        parts[..parts.len() - 1].iter().all(|p| p.len() > 250),
        "parts are filled"
    );
    assert_eq!(label_from_tags(&tags), Some(text));
}

#[test]
fn postgres_label_edge_cases() {
    // An empty label still round-trips (one empty value).
    let tags = label_tags("", "0/0");
    assert_eq!(label_from_tags(&tags).as_deref(), Some(""));
    // Exactly 256 plain characters: one tag; 257: two.
    assert_eq!(split(&"a".repeat(256)).len(), 1);
    assert_eq!(split(&"a".repeat(257)).len(), 2);
    // No label at all, or unreadable parts.
    assert_eq!(label_from_tags(&Tags::new()), None);
    for bad in ["@", "@4", "@ZZ", "@+1", "@C3"] {
        let tags: Tags = [(tags::PG_BACKUP_LABEL.to_owned(), bad.to_owned())].into();
        assert_eq!(label_from_tags(&tags), None, "{bad:?}");
    }
    // A second part without the first is not a label.
    let tags: Tags = [("ninelives:pg-backup-label-2".to_owned(), "x".to_owned())].into();
    assert_eq!(label_from_tags(&tags), None);
    // The tablespace map is stored the same way, under its own key.
    let map = "16384 /mnt/ts1\n16385 /mnt/ts 2\n";
    let tags = split_tags(tags::PG_TABLESPACE_MAP, map);
    assert_eq!(tablespace_map_from_tags(&tags).as_deref(), Some(map));
    assert_eq!(label_from_tags(&tags), None);
}

/// A locator that answers from a list, counting calls.
struct Fake {
    answer: Result<Endpoint, String>,
    calls: Mutex<Vec<(String, String)>>,
}

impl NodeLocator for Fake {
    async fn locate(&self, instance_id: &str, cluster: &str, default_port: u16) -> Result<Node, Error> {
        assert_eq!(default_port, 5432);
        self.calls
            .lock()
            .unwrap()
            .push((instance_id.to_owned(), cluster.to_owned()));
        match &self.answer {
            Ok(endpoint) => Ok(Node {
                instance_id: instance_id.to_owned(),
                cluster: cluster.to_owned(),
                endpoint: endpoint.clone(),
                aliases: Vec::new(),
                launch_time: None,
            }),
            Err(why) => Err(Error::resource(instance_id, why.clone())),
        }
    }
}

fn group(instance: Option<&str>) -> Group {
    Group {
        cluster: "db.example.com".into(),
        instance_id: instance.map(str::to_owned),
        targets: vec![Target {
            volume_id: "vol-1".into(),
            cluster: "db.example.com".into(),
            name: "main".into(),
            instance_id: instance.map(str::to_owned),
            device: None,
            app: Some("postgres".into()),
        }],
    }
}

fn hooks(answer: Result<Endpoint, String>) -> PgBackupHooks<Fake> {
    let settings = PgSettings {
        connect_timeout: std::time::Duration::from_millis(500),
        ..PgSettings::default()
    };
    PgBackupHooks::new(
        settings,
        Fake {
            answer,
            calls: Mutex::new(Vec::new()),
        },
    )
}

#[test]
fn postgres_hooks_support_the_postgres_app_only() {
    let h = hooks(Err("unused".into()));
    assert!(h.supports("postgres"));
    assert!(h.supports(" PostgreSQL "));
    assert!(!h.supports("mysql"));
    assert!(!h.supports(""));
}

#[test]
fn postgres_a_backup_is_proven_by_a_readable_label_only() {
    let h = hooks(Err("unused".into()));
    let label = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nLABEL: x\n";
    let mut tags = label_tags(label, "0/2000100");
    tags.insert(tags::PERIOD.into(), "2026-11-24".into());
    let attached = group(Some("i-1"));
    assert!(h.proves_backup(&attached, &tags));
    // Cut off before the stop or the tagging: the period's tags only.
    let plain: Tags = [(tags::PERIOD.to_owned(), "2026-11-24".to_owned())].into();
    assert!(!h.proves_backup(&attached, &plain));
    // A label that cannot be read back proves nothing.
    let mut garbled = tags.clone();
    garbled.insert(tags::PG_BACKUP_LABEL.into(), "START@Z".into());
    assert!(!h.proves_backup(&attached, &garbled));
    // No server, no backup mode: whatever was taken counts.
    assert!(h.proves_backup(&group(None), &plain));
}

#[tokio::test]
async fn postgres_detached_volumes_need_no_server() {
    let h = hooks(Err("must not be asked".into()));
    let g = group(None);
    let guard = h.before(&g).await.unwrap();
    assert_eq!(guard.backend_pid(), None);
    assert!(h.after(&g, guard, &["snap-1".into()]).await.unwrap().is_empty());
    assert!(h.locator.calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn postgres_start_failures_name_the_instance_and_endpoint() {
    // The locator cannot place the instance: its error, not retryable.
    let h = hooks(Err("instance not found".into()));
    let err = h.before(&group(Some("i-gone"))).await.unwrap_err();
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("i-gone"), "{err}");

    // Nothing listens there: retryable, naming both.
    let h = hooks(Ok(Endpoint::new("127.0.0.1", 1)));
    let err = h.before(&group(Some("i-0abc"))).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    let text = err.to_string();
    assert!(text.contains("i-0abc") && text.contains("127.0.0.1:1"), "{text}");
    assert!(text.contains("pg_backup_start"), "{text}");
    assert_eq!(
        *h.locator.calls.lock().unwrap(),
        vec![("i-0abc".to_owned(), "db.example.com".to_owned())]
    );
}
