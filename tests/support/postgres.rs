//! Real PostgreSQL servers for tests: a primary ([`PgServer::primary`])
//! and streaming replicas of it ([`PgServer::replica_of`], a
//! `pg_basebackup -R` copy), from the Debian packages' binaries
//! (`/usr/lib/postgresql/<version>/bin`, the newest installed;
//! `scripts/test.sh` installs `postgresql` and checks for 15 or newer).
//!
//! Each server has a directory of its own under the temporary directory
//! (data directory, log), listens on one loopback address and port over
//! TCP only (no Unix socket, so nothing is shared with a system cluster),
//! and is stopped and its directory removed when dropped. The superuser
//! `postgres` has the password [`PASSWORD`], and every TCP connection
//! (replication included) must give it (`scram-sha-256` in `pg_hba.conf`),
//! so a wrong password is refused as it would be in production.
//!
//! The server log (stderr) is `postgres.log` in the server's directory:
//! every statement (`log_statement = all`), connections, and a prefix
//! `<time> [<pid>] <application> ` so a test can tell which backend did
//! what ([`PgServer::log`], [`statements`]).
//!
//! # Running as root
//!
//! PostgreSQL refuses to run as root, and CI runs the tests as root. Then
//! `initdb`, `pg_basebackup` and `postgres` run as the unprivileged user
//! `postgres` (which the Debian package creates): the server's directory
//! is created by the test and handed to that user (`chown`), and the
//! processes are started with that uid and gid (`CommandExt::uid`/`gid`),
//! no `su`/`runuser` (so no PAM, no login shell, nothing that can prompt).
//! The log file is opened by the test and passed as the server's stderr,
//! so the test reads it whoever owns the directory. The temporary
//! directory (`TMPDIR`, default `/tmp`) must be one that user may enter.
//! Not as root, the processes run as the current user.
//!
//! # Ports
//!
//! Like `redis.rs`: each test file owns a range, each test in it its own
//! ports, on 127.0.0.2 and up. Taken: `tests/postgres.rs` 17300-17389,
//! `tests/publish_metrics.rs` 17390-17399, `tests/secrets.rs` 17620-17639
//! (on 127.0.12.2-127.0.12.9), `tests/datastore_faults.rs` 17680-17699
//! (on 127.0.13.2-9).
//!
//! Servers are killed with the thread that started them
//! (`PR_SET_PDEATHSIG`, SIGKILL), so a test process killed by Ctrl-C or a
//! CI timeout leaves none behind: start them from the test itself.

use std::fs;
use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shared::chain::model::Endpoint;
use shared::pg_node::PgSettings;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// The superuser's password on every test server.
pub const PASSWORD: &str = "ninelives-test-pw";

/// How long a server may take to answer after it is started.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// Bound on each helper query.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// A `postgres` process of this test.
pub struct PgServer {
    host: String,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    stopped: bool,
}

impl PgServer {
    /// Initialises a cluster and starts it as a primary on `host:port`,
    /// and waits until it answers (it, not a stray server: its
    /// `data_directory` is ours). Panics with the log if it does not.
    pub async fn primary(host: &str, port: u16) -> PgServer {
        PgServer::primary_with(host, port, &[]).await
    }

    /// [`PgServer::primary`] with `settings` (`postgresql.conf` lines)
    /// added after the harness' own, so they win: WAL archiving, say.
    pub async fn primary_with(host: &str, port: u16, settings: &[&str]) -> PgServer {
        crate::hold_file_lock();
        let server = PgServer::new(host, port);
        let pwfile = server.dir.join("pwfile");
        fs::write(&pwfile, PASSWORD).unwrap_or_else(|e| panic!("{}: {e}", pwfile.display()));
        server.give(&pwfile);
        run(
            Command::new(bin("initdb"))
                .arg("-D")
                .arg(server.data())
                .args(["-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"])
                .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
                .arg(format!("--pwfile={}", pwfile.display())),
            &server.dir,
        );
        append(
            &server.data().join("postgresql.conf"),
            &[
                "unix_socket_directories = ''",
                "wal_level = replica",
                "max_wal_senders = 5",
                "wal_keep_size = '256MB'",
                "hot_standby = on",
                "max_connections = 40",
                "shared_buffers = '16MB'",
                // Tests: no need to survive a power cut.
                "fsync = off",
                "logging_collector = off",
                "log_statement = 'all'",
                "log_connections = on",
                "log_disconnections = on",
                "log_line_prefix = '%m [%p] %a '",
            ],
        );
        append(&server.data().join("postgresql.conf"), settings);
        fs::write(
            server.data().join("pg_hba.conf"),
            "host all all 127.0.0.0/8 scram-sha-256\nhost replication all 127.0.0.0/8 scram-sha-256\n",
        )
        .expect("pg_hba.conf");
        server.started().await
    }

    /// A streaming replica of `primary` on `host:port`, named `name`
    /// (its `application_name` in the primary's `pg_stat_replication`).
    pub async fn replica_of(primary: &PgServer, host: &str, port: u16, name: &str) -> PgServer {
        crate::hold_file_lock();
        let server = PgServer::new(host, port);
        run(
            Command::new(bin("pg_basebackup"))
                .args([
                    "-h",
                    &primary.host,
                    "-p",
                    &primary.port.to_string(),
                    "-U",
                    "postgres",
                ])
                .arg("-D")
                .arg(server.data())
                .args(["-R", "-X", "stream", "-c", "fast", "--no-sync"])
                .env("PGPASSWORD", PASSWORD),
            &server.dir,
        );
        // After -R's own line, so this one counts: it names the replica.
        append(
            &server.data().join("postgresql.auto.conf"),
            &[&format!(
                "primary_conninfo = 'host={} port={} user=postgres password={PASSWORD} application_name={name}'",
                primary.host, primary.port
            )],
        );
        server.started().await
    }

    fn new(host: &str, port: u16) -> PgServer {
        let dir = std::env::temp_dir().join(format!(
            "ninelives-pg-{host}-{port}-{}-{}",
            std::process::id(),
            crate::unique()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let server = PgServer {
            host: host.to_owned(),
            port,
            dir,
            child: None,
            stopped: false,
        };
        server.give(&server.dir);
        server
    }

    /// Hands `path` to the user the server runs as (when that is not us).
    fn give(&self, path: &Path) {
        if let Some((uid, gid)) = server_user() {
            chown(path, Some(uid), Some(gid)).unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
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

    /// Settings that log in as the superuser, with short timeouts.
    pub fn settings(&self) -> PgSettings {
        PgSettings {
            user: "postgres".into(),
            password: Some(PASSWORD.into()),
            database: "postgres".into(),
            connect_timeout: Duration::from_millis(2000),
            command_timeout: Duration::from_millis(5000),
        }
    }

    /// The postmaster's process id (while it runs).
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .expect("the server is not running")
    }

    /// A superuser session to `database` (the connection is driven by a
    /// task of the current runtime and ends when the client is dropped).
    pub async fn client_to(&self, database: &str) -> Client {
        self.try_client(database, PASSWORD)
            .await
            .unwrap_or_else(|e| panic!("connect to {} database {database}: {e}", self.endpoint()))
    }

    /// A superuser session to `postgres`.
    pub async fn client(&self) -> Client {
        self.client_to("postgres").await
    }

    pub async fn try_client(&self, database: &str, password: &str) -> Result<Client, tokio_postgres::Error> {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.host)
            .port(self.port)
            .user("postgres")
            .password(password)
            .dbname(database)
            .application_name("ninelives-test")
            .connect_timeout(COMMAND_TIMEOUT);
        let (client, connection) = config.connect(NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Runs `sql` (several statements allowed) in `database`; panics on
    /// any error, naming the SQL.
    pub async fn execute_in(&self, database: &str, sql: &str) {
        let client = self.client_to(database).await;
        tokio::time::timeout(COMMAND_TIMEOUT * 6, client.batch_execute(sql))
            .await
            .unwrap_or_else(|_| panic!("{sql} on {}: timed out", self.endpoint()))
            .unwrap_or_else(|e| panic!("{sql} on {}: {e:?}", self.endpoint()));
    }

    pub async fn execute(&self, sql: &str) {
        self.execute_in("postgres", sql).await
    }

    /// The first column of the first row of `sql`, as text (`None` for
    /// NULL or no row).
    pub async fn value(&self, sql: &str) -> Option<String> {
        let client = self.client().await;
        let messages = tokio::time::timeout(COMMAND_TIMEOUT, client.simple_query(sql))
            .await
            .unwrap_or_else(|_| panic!("{sql} on {}: timed out", self.endpoint()))
            .unwrap_or_else(|e| panic!("{sql} on {}: {e:?}", self.endpoint()));
        messages.into_iter().find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row.get(0).map(str::to_owned)),
            _ => None,
        })?
    }

    /// `pg_current_wal_lsn()` of a primary, in bytes.
    pub async fn current_lsn(&self) -> u64 {
        let text = self.value("SELECT pg_current_wal_lsn()").await.expect("an LSN");
        shared::metrics::postgres::parse_lsn(&text).expect("a readable LSN")
    }

    /// Puts `line` first in `pg_hba.conf` and reloads; returns once a new
    /// connection is checked against it (the postmaster reloads on its
    /// own time after the SIGHUP).
    pub async fn hba_prepend(&self, line: &str) {
        let path = self.data().join("pg_hba.conf");
        let old = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        fs::write(&path, format!("{line}\n{old}")).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let before = self.log().matches("received SIGHUP").count();
        self.execute("SELECT pg_reload_conf()").await;
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        while self.log().matches("received SIGHUP").count() == before {
            assert!(
                Instant::now() < deadline,
                "no reload of {}:\n{}",
                self.endpoint(),
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Pauses WAL replay on a replica (it keeps receiving).
    pub async fn pause_replay(&self) {
        self.execute("SELECT pg_wal_replay_pause()").await
    }

    pub async fn resume_replay(&self) {
        self.execute("SELECT pg_wal_replay_resume()").await
    }

    /// SIGSTOP: the postmaster stops answering, but its kernel still
    /// accepts TCP connections (into the listen backlog), as with a hung
    /// node. Sessions already open keep their own processes.
    pub fn stop(&mut self) {
        self.signal(libc::SIGSTOP);
        self.stopped = true;
    }

    /// SIGCONT, after [`PgServer::stop`].
    pub fn cont(&mut self) {
        self.signal(libc::SIGCONT);
        self.stopped = false;
    }

    /// Ends the server now (immediate shutdown, then SIGKILL if it lingers)
    /// and waits for it: nothing listens afterwards.
    pub fn kill(&mut self) {
        if self.stopped {
            self.cont();
        }
        if let Some(mut child) = self.child.take() {
            // SIGQUIT is PostgreSQL's immediate shutdown: the postmaster
            // takes its backends down with it, unlike a SIGKILL of it alone.
            // SAFETY: kill(2) on our own child, not yet reaped.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGQUIT) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }

    /// The last lines of the log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Ends the server as [`PgServer::kill`] does (if it runs) and starts
    /// it again on the same data directory (crash recovery when it was
    /// killed), as a node comes back after a crash or a reboot; waits until
    /// it answers. The log goes on in the same file.
    pub async fn restart(&mut self) {
        self.kill();
        self.launch().await;
    }

    /// Starts the postmaster on the prepared data directory.
    async fn started(mut self) -> PgServer {
        self.launch().await;
        self
    }

    async fn launch(&mut self) {
        let log_path = self.dir.join("postgres.log");
        // Appended to, so a restarted server's log keeps what came before.
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap_or_else(|e| panic!("{}: {e}", log_path.display()));
        let stderr = log.try_clone().expect("log file handle");
        let mut command = Command::new(bin("postgres"));
        command
            .arg("-D")
            .arg(self.data())
            .arg("-c")
            .arg(format!("listen_addresses={}", self.host))
            .arg("-c")
            .arg(format!("port={}", self.port))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr);
        as_server_user(&mut command);
        // std runs pre_exec hooks after the uid change (which would clear
        // the death signal), so it holds for the server.
        crate::die_with_parent(&mut command);
        let child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot run {} (scripts/test.sh installs it): {e}",
                bin("postgres").display()
            )
        });
        self.child = Some(child);
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_WITHIN;
        let data = fs::canonicalize(self.data()).unwrap_or_else(|_| self.data());
        let mut last = String::from("not tried");
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                panic!(
                    "postgres on {} exited ({status}) before answering; log:\n{}",
                    self.endpoint(),
                    self.log_tail()
                );
            }
            match self.try_client("postgres", PASSWORD).await {
                Ok(client) => match client.simple_query("SHOW data_directory").await {
                    Ok(messages) => {
                        let dir = messages.iter().find_map(|m| match m {
                            SimpleQueryMessage::Row(row) => row.get(0).map(PathBuf::from),
                            _ => None,
                        });
                        if dir.as_deref() == Some(data.as_path()) {
                            return;
                        }
                        last = format!("another server answers on this address ({dir:?})");
                    }
                    Err(e) => last = format!("{e:?}"),
                },
                Err(e) => last = format!("{e:?}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.kill();
        panic!(
            "postgres on {} did not answer within {READY_WITHIN:?} ({last}); log:\n{}",
            self.endpoint(),
            self.log_tail()
        );
    }

    fn signal(&self, signal: libc::c_int) {
        crate::signal_child(self.pid(), signal);
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.kill();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// `(pid, statement)` of every statement in `log` that contains `needle`,
/// in order (lines `<time> [<pid>] <app> LOG:  statement: ...` or
/// `... LOG:  execute <name>: ...`).
pub fn statements(log: &str, needle: &str) -> Vec<(u32, String)> {
    log.lines()
        .filter(|l| l.contains(needle) && (l.contains("statement: ") || l.contains("execute ")))
        .filter_map(|l| {
            let pid = l.split_once(" [")?.1.split_once(']')?.0.parse().ok()?;
            Some((pid, l.to_owned()))
        })
        .collect()
}

/// The newest installed PostgreSQL's `name` binary.
fn bin(name: &str) -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, dir)) => dir.join(name),
        None => panic!(
            "no PostgreSQL under /usr/lib/postgresql/*/bin: install the Debian package postgresql \
             (scripts/test.sh does)"
        ),
    }
}

/// The uid and gid the server processes run as: the `postgres` user when
/// we are root (PostgreSQL refuses root), else ourselves (`None`).
fn server_user() -> Option<(u32, u32)> {
    // SAFETY: geteuid cannot fail; getpwnam returns a pointer to static
    // storage or null, read at once on this thread.
    unsafe {
        if libc::geteuid() != 0 {
            return None;
        }
        let pw = libc::getpwnam(c"postgres".as_ptr());
        assert!(
            !pw.is_null(),
            "running as root, and there is no user postgres to run PostgreSQL as \
             (the Debian package creates it): install postgresql, or run the tests as another user"
        );
        Some(((*pw).pw_uid, (*pw).pw_gid))
    }
}

fn as_server_user(command: &mut Command) {
    if let Some((uid, gid)) = server_user() {
        // groups(&[]) is unstable: setgroups is done by std when uid is
        // set and we are root (it drops the supplementary groups).
        command.uid(uid).gid(gid);
    }
}

/// Runs a setup command as the server user; panics with its output if it
/// fails.
fn run(command: &mut Command, dir: &Path) {
    as_server_user(command);
    // A directory the server user may enter (initdb looks up its own path).
    command.stdin(Stdio::null()).current_dir(dir);
    let shown = format!("{command:?}").replace(PASSWORD, "***");
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown} (scripts/test.sh installs PostgreSQL): {e}"));
    assert!(
        out.status.success(),
        "{shown} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn append(path: &Path, lines: &[&str]) {
    use std::io::Write as _;
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for line in lines {
        writeln!(file, "{line}").unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

/// An EC2 instance in the local AWS tagged as a PostgreSQL node of
/// `cluster` at `endpoint` (`host:port`); its id.
pub async fn postgres_instance(sdk: &aws_config::SdkConfig, cluster: &str, endpoint: &str) -> String {
    crate::tagged_instance(sdk, "postgres", cluster, endpoint).await
}

/// One volume tagged for backup mode (`ninelives:app=postgres`), attached
/// to a new instance of a new cluster whose endpoint is `endpoint`;
/// (instance, volume).
pub async fn postgres_volume(sdk: &aws_config::SdkConfig, endpoint: &str) -> (String, String) {
    let ec2 = crate::Ec2::new(sdk);
    let cluster = format!("pg-{}.example.com", crate::unique());
    let instance = postgres_instance(sdk, &cluster, endpoint).await;
    let az = ec2
        .client
        .describe_instances()
        .instance_ids(&instance)
        .send()
        .await
        .expect("DescribeInstances")
        .reservations()[0]
        .instances()[0]
        .placement()
        .and_then(|p| p.availability_zone())
        .expect("an AZ")
        .to_owned();
    let handle = crate::Instance {
        id: instance.clone(),
        az: az.clone(),
        root_volume: String::new(),
    };
    let volume = ec2
        .volume(
            &az,
            &[
                (shared::tags::CLUSTER, &cluster),
                (shared::tags::NAME, "main"),
                (shared::tags::APP, "postgres"),
            ],
            Some((&handle, "/dev/sdf")),
        )
        .await;
    (instance, volume)
}
