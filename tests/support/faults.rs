//! The fault-injecting proxy (local/faults/addon.py, a mitmproxy addon) for
//! tests: started in front of the local AWS on a loopback port of the
//! calling test, told which faults to inject through its control route, and
//! asked afterwards what it injected so a test can prove the fault happened.
//!
//! The functions reach AWS through the proxy only by endpoint URL
//! ([`FaultProxy::sdk`]); the test's own set-up and its reading of the world
//! afterwards go straight to the local AWS, so they are never faulted.
//!
//! Compiled into the test binaries that use it (`#[path]`), not into the
//! support library: it is only theirs, and needs mitmproxy's venv.
//!
//! Each proxy is a child process killed and reaped on drop (and with the
//! test process, `PR_SET_PDEATHSIG`), so a failing test leaves none behind.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use serde_json::{Value, json};

use ninelives_tests::die_with_parent;

/// The loopback address the proxies listen on (this test file's own).
pub const HOST: &str = "127.0.14.2";

/// The per-attempt timeout the faulted functions use: production's is 20 s
/// (`shared::aws::ATTEMPT_TIMEOUT`); a hang cell would otherwise cost 20 s
/// per injected hang. Everything else is as `shared::aws::load_sdk_config`
/// makes it (standard retries, 6 attempts, backoff with jitter).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a hang holds a request or its response: past the attempt
/// timeout, so the client gives up on it first.
pub const HOLD: Duration = Duration::from_secs(5);

/// One kind of fault, as the proxy's rules name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The service's own throttling error, in its protocol's shape.
    Throttle,
    /// HTTP 503 with no AWS error body.
    Http503,
    /// 700 ms added before forwarding.
    Latency,
    /// The request is held past the attempt timeout and never forwarded.
    HangBefore,
    /// Moto does the work; its response is held past the attempt timeout.
    HangAfter,
    /// The connection is closed before forwarding.
    DropBefore,
    /// Moto does the work; the connection is closed instead of answering.
    DropAfter,
}

impl Fault {
    pub const ALL: [Fault; 7] = [
        Fault::Throttle,
        Fault::Http503,
        Fault::Latency,
        Fault::HangBefore,
        Fault::HangAfter,
        Fault::DropBefore,
        Fault::DropAfter,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::Throttle => "throttle",
            Fault::Http503 => "http503",
            Fault::Latency => "latency",
            Fault::HangBefore => "hang_before",
            Fault::HangAfter => "hang_after",
            Fault::DropBefore => "drop_before",
            Fault::DropAfter => "drop_after",
        }
    }

    /// A rule for this fault on every `every`-th request (of `ops` only,
    /// when given), at most `max` times.
    pub fn rule(self, every: u32, ops: Option<&[&str]>, max: Option<u32>) -> Value {
        let mut rule = json!({
            "kind": self.name(),
            "every": every,
            "hold_ms": HOLD.as_millis() as u64,
            "delay_ms": 700,
        });
        if let Some(ops) = ops {
            rule["ops"] = json!(ops);
        }
        if let Some(max) = max {
            rule["max"] = json!(max);
        }
        rule
    }
}

/// A running proxy in front of the local AWS.
pub struct FaultProxy {
    child: Child,
    port: u16,
}

/// The workspace root, as this test binary was built from.
fn root() -> PathBuf {
    let tests = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    tests.parent().map(PathBuf::from).unwrap_or(tests)
}

fn mitmdump() -> PathBuf {
    if let Ok(path) = std::env::var("NINELIVES_MITMDUMP") {
        return PathBuf::from(path);
    }
    let path = root().join(".local-aws/faults-venv/bin/mitmdump");
    assert!(
        path.exists(),
        "{} is missing: run scripts/fault-proxy.sh install (or set NINELIVES_MITMDUMP)",
        path.display()
    );
    path
}

impl FaultProxy {
    /// Starts a proxy on `HOST:port` in front of `AWS_ENDPOINT_URL` and waits
    /// (at most 60 s) until its control route answers.
    pub fn start(port: u16) -> FaultProxy {
        ninelives_tests::hold_file_lock();
        let upstream = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
        assert!(
            upstream.starts_with("http://127.") || upstream.starts_with("http://localhost"),
            "the fault proxy fronts the local AWS on loopback only (AWS_ENDPOINT_URL is {upstream:?})"
        );
        let log = std::env::temp_dir().join(format!("ninelives-faults-{port}.log"));
        let log = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let mut command = Command::new(mitmdump());
        command
            .args(["-q", "--mode"])
            .arg(format!("reverse:{upstream}"))
            .args(["--listen-host", HOST, "--listen-port"])
            .arg(port.to_string())
            // No TLS here: do not let mitmproxy write a CA into $HOME. One
            // folder per proxy: proxies starting at once on a fresh machine
            // would otherwise write the same CA files together.
            .args(["--set", "connection_strategy=lazy", "--set"])
            .arg(format!(
                "confdir={}",
                std::env::temp_dir()
                    .join(format!("ninelives-mitmproxy-{port}"))
                    .display()
            ))
            .arg("-s")
            .arg(root().join("local/faults/addon.py"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        die_with_parent(&mut command);
        let child = command.spawn().expect("start mitmdump");
        let mut proxy = FaultProxy { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((200, _)) = proxy.control("GET", "/_faults/ping", "") {
                return proxy;
            }
            if let Ok(Some(status)) = proxy.child.try_wait() {
                panic!("mitmdump exited ({status}) during start-up; see its log in the temp dir");
            }
            assert!(
                Instant::now() < deadline,
                "the fault proxy on port {port} did not answer within 60 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{HOST}:{}", self.port)
    }

    /// An SDK config for `region` as `shared::aws::load_sdk_config` builds
    /// it (standard retries, 6 attempts, its connect and operation
    /// timeouts), but reaching AWS through this proxy, with
    /// [`ATTEMPT_TIMEOUT`] per attempt. The endpoint is given to the loader
    /// itself: one set on a loaded config afterwards loses to
    /// `AWS_ENDPOINT_URL` from the environment, which the service clients
    /// read again.
    pub async fn sdk(&self, region: &'static str) -> SdkConfig {
        let production = shared::aws::timeout_config();
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region))
            .endpoint_url(self.endpoint())
            .retry_config(shared::aws::retry_config())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(production.connect_timeout().unwrap_or(Duration::from_secs(3)))
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .operation_timeout(production.operation_timeout().unwrap_or(Duration::from_secs(60)))
                    .build(),
            )
            .load()
            .await
    }

    /// Replaces `region`'s rules (and resets its counters).
    pub fn set(&self, region: &str, rules: &[Value]) {
        let body = Value::from(rules.to_vec()).to_string();
        let (status, answer) = self
            .control("PUT", &format!("/_faults/rules/{region}"), &body)
            .expect("the fault proxy's control route");
        assert_eq!(status, 200, "{answer}");
    }

    /// What the proxy saw and injected in `region` since its rules were set:
    /// `seen`, `ops` (count per operation), `injected` (list of {op, kind}).
    pub fn counts(&self, region: &str) -> Value {
        let (status, answer) = self
            .control("GET", &format!("/_faults/counts/{region}"), "")
            .expect("the fault proxy's control route");
        assert_eq!(status, 200, "{answer}");
        serde_json::from_str(&answer).expect("JSON counts")
    }

    /// The injected faults of `region`, as (operation, kind).
    pub fn injected(&self, region: &str) -> Vec<(String, String)> {
        self.counts(region)["injected"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|i| {
                (
                    i["op"].as_str().unwrap_or_default().to_owned(),
                    i["kind"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// No rules for `region` any more.
    pub fn clear(&self, region: &str) {
        let (status, answer) = self
            .control("DELETE", &format!("/_faults/rules/{region}"), "")
            .expect("the fault proxy's control route");
        assert_eq!(status, 200, "{answer}");
    }

    fn control(&self, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
        let mut stream = TcpStream::connect((HOST, self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "{method} {path} HTTP/1.0\r\nHost: {HOST}:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.port,
            body.len()
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let (head, body) = response
            .split_once("\r\n\r\n")
            .ok_or_else(|| std::io::Error::other("not an HTTP response"))?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("no status in {head:?}")))?;
        Ok((status, body.to_owned()))
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
