//! Real `redis-server` processes for tests (`redis-server` from `PATH`, else
//! `/usr/bin/redis-server`; `scripts/test.sh` installs it).
//!
//! [`RedisServer::start`] runs one in the foreground, bound to one loopback
//! address and port, with a directory of its own (config, log, no
//! persistence), and kills it when dropped. Any address in 127.0.0.0/8
//! works on Linux without setup, so a chain can put each node on an address
//! of its own with the same port, as on EC2. A replica connects from its own
//! address (`bind-source-addr`), so its master lists it by that address, as
//! `FAILOVER TO` needs.
//!
//! # Ports
//!
//! Tests run in parallel within a test binary, and test binaries may run at
//! the same time: each test file owns a range of ports (on 127.0.0.2 and
//! up; 127.0.0.1 is left to any Redis the machine runs itself), and each
//! test in it uses ports no other test of the file uses. Taken so far:
//!
//! - `tests/redis_node.rs` (the adapter tests): 17000-17099;
//! - `tests/redis_chain.rs` (the chain tests): 17100-17199;
//! - `tests/publish_metrics.rs` (publish-metrics): 17200-17299;
//! - `tests/secrets.rs` (credentials by reference): 17620-17639 on
//!   127.0.12.2-127.0.12.9;
//! - `tests/datastore_faults.rs` (faults under redis-failover): 17660-17679,
//!   on 127.0.13.2-9;
//! - `tests/aws_faults.rs` (the AWS fault matrix): proxies 17700-17709 and
//!   Redis 17720-17739 on 127.0.14.2-9;
//! - `tests/hostile/process_check.py` (malformed events, Runtime API):
//!   17640-17659 on 127.0.16.2;
//! - `tests/duplicates.rs` (duplicate deliveries): 17760-17799 on
//!   127.0.15.2-7.
//!
//! A new file takes the next free hundred and adds itself here. Two runs of
//! one file never overlap on a machine: starting a server (or calling
//! `sdk`) takes the file's lock first ([`crate::hold_file_lock`]).

use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::{ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, Value};
use shared::chain::model::{Endpoint, Replication};

/// How long a server may take to answer after it is started.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// Bound on each helper command (connect, and reply).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// A `redis-server` process of this test.
pub struct RedisServer {
    host: String,
    port: u16,
    password: Option<String>,
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts `redis-server` on `host:port` (a loopback address and a port
    /// of the calling test file's range, see the module documentation),
    /// requiring `password` (also used as `masterauth`, so replicas of a
    /// chain sharing it can sync), and waits until it answers (it, not a
    /// stray server holding the port: `INFO server` names its pid). Panics,
    /// with the end of the server's log, if it does not within 10 s.
    ///
    /// The server is killed when dropped, and also (SIGKILL, through
    /// `PR_SET_PDEATHSIG`) when the thread that started it ends, so a test
    /// process killed by Ctrl-C or a CI timeout leaves no server behind:
    /// start it from the test itself, not from a thread or `spawn_blocking`
    /// task that ends before the test.
    pub fn start(host: &str, port: u16, password: Option<&str>) -> RedisServer {
        crate::hold_file_lock();
        let dir = std::env::temp_dir().join(format!(
            "ninelives-redis-{host}-{port}-{}-{}",
            std::process::id(),
            crate::unique()
        ));
        let mut server = RedisServer {
            host: host.to_owned(),
            port,
            password: password.map(str::to_owned),
            dir,
            child: None,
        };
        server.spawn();
        server
    }

    pub fn endpoint(&self) -> Endpoint {
        Endpoint::new(&self.host, self.port)
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The server's process id (while it runs).
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .expect("the server is not running")
    }

    /// The server's own directory (config, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// SIGKILL, and wait for the process to end: nothing listens
    /// afterwards, as when a node dies. `restart` brings it back.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // An error means it already ended; `wait` reaps it either way.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP: the process stops answering, but its kernel still accepts
    /// TCP connections (into the listen backlog), as with a hung node.
    pub fn stop(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT, after [`RedisServer::stop`].
    pub fn cont(&self) {
        self.signal(libc::SIGCONT);
    }

    /// Kills the server (if running) and starts it again on the same
    /// address, with an empty dataset, as a replaced node comes back.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Runs a command, e.g. `cmd(&["SET", "k", "v"])`; panics on any error
    /// (an error reply included), naming the command.
    pub fn cmd(&self, args: &[&str]) -> Value {
        self.try_cmd(args)
            .unwrap_or_else(|e| panic!("{} on {}: {e}", args.join(" "), self.endpoint()))
    }

    /// Runs a command on a fresh connection (5 s bounds).
    pub fn try_cmd(&self, args: &[&str]) -> redis::RedisResult<Value> {
        let mut cmd = redis::Cmd::new();
        for arg in args {
            cmd.arg(*arg);
        }
        let client = redis::Client::open(self.connection_info())?;
        let mut connection = client.get_connection_with_timeout(COMMAND_TIMEOUT)?;
        connection.set_read_timeout(Some(COMMAND_TIMEOUT))?;
        connection.set_write_timeout(Some(COMMAND_TIMEOUT))?;
        cmd.query(&mut connection)
    }

    /// `INFO replication`, read with the parser the adapter uses.
    pub fn info_replication(&self) -> Replication {
        let text = match self.cmd(&["INFO", "replication"]) {
            Value::BulkString(bytes) => String::from_utf8(bytes).expect("INFO is UTF-8"),
            Value::VerbatimString { text, .. } => text,
            other => panic!("INFO replication on {} answered {other:?}", self.endpoint()),
        };
        shared::chain::info::parse(&text)
            .unwrap_or_else(|e| panic!("INFO replication on {}: {e}\n{text}", self.endpoint()))
    }

    /// Polls `INFO replication` every 50 ms until `done` holds, and returns
    /// it; panics after `within`, showing the last state and `what`.
    pub fn wait_for(&self, what: &str, within: Duration, done: impl Fn(&Replication) -> bool) -> Replication {
        let deadline = Instant::now() + within;
        loop {
            let replication = self.info_replication();
            if done(&replication) {
                return replication;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} did not reach {what} within {within:?}; last INFO replication: {replication:#?}\nlog:\n{}",
                    self.endpoint(),
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = fs::File::open(self.dir.join("redis.log")) {
            let _ = file.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn connection_info(&self) -> redis::ConnectionInfo {
        let mut auth = RedisConnectionInfo::default().set_skip_set_lib_name();
        if let Some(password) = &self.password {
            auth = auth.set_password(password);
        }
        ConnectionAddr::Tcp(self.host.clone(), self.port)
            .into_connection_info()
            .expect("a TCP address")
            .set_redis_settings(auth)
    }

    fn spawn(&mut self) {
        // A fresh directory: an empty dataset, a log of this run only.
        let _ = fs::remove_dir_all(&self.dir);
        fs::create_dir_all(&self.dir).unwrap_or_else(|e| panic!("{}: {e}", self.dir.display()));
        let config = self.dir.join("redis.conf");
        fs::write(&config, self.config()).unwrap_or_else(|e| panic!("{}: {e}", config.display()));

        let binary = redis_server();
        let mut command = Command::new(&binary);
        command
            .arg(&config)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Killed with the thread that started it, the server cannot outlive
        // a test process that is itself killed (Ctrl-C, a CI timeout) and
        // keep the port for the next run.
        crate::die_with_parent(&mut command);
        let child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot run {} (scripts/test.sh installs it): {e}",
                binary.display()
            )
        });
        self.child = Some(child);
        self.wait_ready();
    }

    fn config(&self) -> String {
        let mut lines = vec![
            format!("bind {}", self.host),
            format!("port {}", self.port),
            "daemonize no".to_owned(),
            "protected-mode no".to_owned(),
            format!("dir \"{}\"", self.dir.display()),
            "logfile redis.log".to_owned(),
            "save \"\"".to_owned(),
            "appendonly no".to_owned(),
            // Connect to a master from our own address, so the master lists
            // this replica as host:port (what `FAILOVER TO` matches).
            format!("bind-source-addr {}", self.host),
            // Full syncs start at once (the default waits 5 s for more
            // replicas to share the transfer).
            "repl-diskless-sync-delay 0".to_owned(),
        ];
        if let Some(password) = &self.password {
            assert!(
                !password.contains(['"', '\\', '\n']),
                "test passwords go into redis.conf between double quotes: {password:?}"
            );
            lines.push(format!("requirepass \"{password}\""));
            lines.push(format!("masterauth \"{password}\""));
        }
        lines.join("\n") + "\n"
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_WITHIN;
        let mut last = String::from("not tried");
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                panic!(
                    "redis-server on {} exited ({status}) before answering; log:\n{}",
                    self.endpoint(),
                    self.log_tail()
                );
            }
            // Ours, not a stray server holding the port (ours then exits).
            match self.try_cmd(&["INFO", "server"]) {
                Ok(Value::BulkString(info)) => {
                    let pid = format!("process_id:{}\r\n", self.pid());
                    if String::from_utf8_lossy(&info).contains(&pid) {
                        return;
                    }
                    last = "another process answers on this address".to_owned();
                }
                Ok(other) => last = format!("INFO server answered {other:?}"),
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        self.kill();
        panic!(
            "redis-server on {} did not answer within {READY_WITHIN:?} ({last}); log:\n{}",
            self.endpoint(),
            self.log_tail()
        );
    }

    fn signal(&self, signal: libc::c_int) {
        crate::signal_child(self.pid(), signal);
    }
}

/// `redis-server` from `PATH` (what `scripts/test.sh` checks), else the
/// Debian package's.
fn redis_server() -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("redis-server"))
        .find(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from("/usr/bin/redis-server"))
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// An EC2 instance in the local AWS tagged as a node of the Redis chain
/// `cluster` at `endpoint` (`host:port`); its id.
pub async fn redis_instance(sdk: &aws_config::SdkConfig, cluster: &str, endpoint: &str) -> String {
    crate::tagged_instance(sdk, "redis", cluster, endpoint).await
}
