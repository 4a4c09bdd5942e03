//! A replica set for the tests: `local/mongo_peer.py`, a MongoDB
//! wire-protocol peer (PyPI `mockupdb`) that plays the members of one set
//! on loopback addresses (no mongod is installable here). It answers
//! `hello`, `replSetGetStatus`, `replSetGetConfig`, `replSetReconfig`,
//! `replSetStepDown` and `serverStatus` like MongoDB 4.4+ does (7.0's
//! figures), checks every reconfig it is sent, and records the commands so
//! tests can assert on them. Tests drive it (who is primary, who is down,
//! a member's serverStatus figures and lag) with its `ninelivesPeer`
//! commands.
//!
//! The peer runs on the project's local-AWS venv Python
//! (`.local-aws/venv`, made by `scripts/local-aws.sh` from
//! `local/requirements.txt`), or `NINELIVES_PYTHON`. It exits when the
//! test process does (it watches its stdin).

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use mongodb::Client;
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::{ClientOptions, ServerAddress};
use serde_json::{Value, json};

use crate::root;

pub struct MongoPeer {
    child: Child,
    // Held open: the peer exits when it closes.
    _stdin: ChildStdin,
    pub set: String,
    pub members: Vec<String>,
    pub spares: Vec<String>,
    control: Client,
}

/// A member of the peer's spec: its loopback address and whether it is
/// an arbiter.
pub struct Spec<'a> {
    pub host: &'a str,
    pub arbiter: bool,
}

pub fn data(host: &str) -> Spec<'_> {
    Spec { host, arbiter: false }
}

pub fn arbiter(host: &str) -> Spec<'_> {
    Spec { host, arbiter: true }
}

fn python() -> String {
    std::env::var("NINELIVES_PYTHON")
        .unwrap_or_else(|_| root().join(".local-aws/venv/bin/python").display().to_string())
}

impl MongoPeer {
    /// A set of `members` (the first data member primary, unless
    /// `primary` says otherwise) and `spares` (mongods waiting to be
    /// added).
    pub async fn start(
        set: &str,
        members: &[Spec<'_>],
        spares: &[Spec<'_>],
        primary: Option<usize>,
    ) -> MongoPeer {
        crate::hold_file_lock();
        let to_json = |s: &[Spec]| -> Vec<Value> {
            s.iter()
                .map(|m| json!({ "host": m.host, "arbiter": m.arbiter }))
                .collect()
        };
        let spec =
            json!({ "set": set, "members": to_json(members), "spares": to_json(spares), "primary": primary });
        let script = root().join("local/mongo_peer.py");
        let mut child = Command::new(python())
            .arg(&script)
            .arg("--spec")
            .arg(spec.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} with {}: {e} (run scripts/local-aws.sh start first)",
                    script.display(),
                    python()
                )
            });
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the peer's first line");
        let ready: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("peer said {line:?}: {e}"));
        let list = |key: &str| -> Vec<String> {
            ready[key]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                .unwrap_or_default()
        };
        let control_host = ready["control"].as_str().expect("a control address").to_owned();
        let (host, port) = control_host.rsplit_once(':').expect("host:port");
        let options = ClientOptions::builder()
            .hosts(vec![ServerAddress::Tcp {
                host: host.to_owned(),
                port: Some(port.parse().expect("a port")),
            }])
            .direct_connection(true)
            .server_selection_timeout(Duration::from_secs(5))
            .build();
        MongoPeer {
            child,
            _stdin: stdin,
            set: set.to_owned(),
            members: list("members"),
            spares: list("spares"),
            control: Client::with_options(options).expect("a control client"),
        }
    }

    pub async fn control(&self, mut command: Document) -> Document {
        let mut body = doc! { "ninelivesPeer": command.get_str("do").expect("a control verb") };
        command.remove("do");
        body.extend(command);
        self.control
            .database("admin")
            .run_command(body.clone())
            .await
            .unwrap_or_else(|e| panic!("peer control {body}: {e}"))
    }

    pub async fn state(&self) -> Document {
        self.control(doc! { "do": "state" }).await
    }

    pub async fn config(&self) -> Document {
        self.state()
            .await
            .get_document("config")
            .expect("a config")
            .clone()
    }

    /// The config's members as `(host, arbiterOnly, votes, priority)`.
    pub async fn config_members(&self) -> Vec<(String, bool, i64, f64)> {
        let config = self.config().await;
        config
            .get_array("members")
            .expect("members")
            .iter()
            .filter_map(Bson::as_document)
            .map(|m| {
                (
                    m.get_str("host").expect("host").to_owned(),
                    m.get_bool("arbiterOnly").unwrap_or(false),
                    number(m.get("votes")).unwrap_or(1),
                    m.get_f64("priority").unwrap_or(1.0),
                )
            })
            .collect()
    }

    pub async fn version(&self) -> i64 {
        number(self.config().await.get("version")).expect("a version")
    }

    pub async fn primary(&self) -> Option<String> {
        self.state().await.get_str("primary").ok().map(str::to_owned)
    }

    pub async fn set_primary(&self, host: Option<&str>) {
        let host = host.map_or(Bson::Null, |h| Bson::String(h.to_owned()));
        self.control(doc! { "do": "setPrimary", "host": host }).await;
    }

    pub async fn set_down(&self, host: &str, down: bool) {
        self.control(doc! { "do": "setDown", "host": host, "down": down })
            .await;
    }

    pub async fn fail(&self, command: &str, times: i32, code: i32, code_name: &str) {
        self.control(doc! { "do": "fail", "command": command, "times": times, "code": code, "codeName": code_name, "errmsg": format!("{code_name} injected by the test") })
            .await;
    }

    /// Sets one figure of `host`'s `serverStatus` at a dotted path
    /// (`globalLock.currentQueue.total`, `wiredTiger.cache.maximum bytes
    /// configured`); it stays until set again or cleared. A string makes a
    /// figure that is not a number.
    pub async fn set_status(&self, host: &str, path: &str, value: Value) {
        let value = mongodb::bson::serialize_to_bson(&value).expect("JSON is BSON");
        self.control(doc! { "do": "setStatus", "host": host, "path": path, "value": value })
            .await;
    }

    /// Leaves a field (or a whole section) out of `host`'s `serverStatus`,
    /// as a server that does not have it would.
    pub async fn unset_status(&self, host: &str, path: &str) {
        self.control(doc! { "do": "setStatus", "host": host, "path": path, "unset": true })
            .await;
    }

    /// Drops what [`Self::set_status`] and [`Self::unset_status`] set, for
    /// `host` or every server.
    pub async fn clear_status(&self, host: Option<&str>) {
        let host = host.map_or(Bson::Null, |h| Bson::String(h.to_owned()));
        self.control(doc! { "do": "clearStatus", "host": host }).await;
    }

    /// How far the data member `host` is behind the primary: its
    /// `optimeDate` in `replSetGetStatus` is the primary's less `secs`
    /// (whole milliseconds; ignored while `host` is the primary).
    pub async fn set_lag(&self, host: &str, secs: f64) {
        self.control(doc! { "do": "setLag", "host": host, "seconds": secs })
            .await;
    }

    /// Commands received, hello and ping left out: `(server, command)`.
    pub async fn log(&self) -> Vec<(String, String, Document)> {
        let reply = self
            .control(doc! { "do": "log", "exclude": ["hello", "isMaster", "ismaster", "ping", "buildInfo", "endSessions"] })
            .await;
        reply
            .get_array("log")
            .expect("a log")
            .iter()
            .filter_map(Bson::as_document)
            .map(|e| {
                (
                    e.get_str("server").unwrap_or_default().to_owned(),
                    e.get_str("command").unwrap_or_default().to_owned(),
                    e.get_document("body").cloned().unwrap_or_default(),
                )
            })
            .collect()
    }

    /// How many times `command` was received.
    pub async fn count(&self, command: &str) -> usize {
        self.log().await.iter().filter(|(_, c, _)| c == command).count()
    }
}

fn number(b: Option<&Bson>) -> Option<i64> {
    match b? {
        Bson::Int32(i) => Some(i64::from(*i)),
        Bson::Int64(i) => Some(*i),
        Bson::Double(d) => Some(*d as i64),
        _ => None,
    }
}

impl Drop for MongoPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An EC2 instance tagged as a member (`mongodb` or `mongodb-arbiter`) of
/// `set` at `endpoint`; its id.
pub async fn mongo_instance(sdk: &aws_config::SdkConfig, arbiter: bool, set: &str, endpoint: &str) -> String {
    let role = if arbiter { "mongodb-arbiter" } else { "mongodb" };
    crate::tagged_instance(sdk, role, set, endpoint).await
}
