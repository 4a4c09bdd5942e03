//! Helpers for integration tests against the local AWS (moto, started by
//! `scripts/test.sh` through `scripts/local-aws.sh`).
//!
//! Each test works in a region of its own, so tests running in parallel
//! never see each other's volumes and snapshots, and names carry a per-run
//! suffix so a server reused between runs cannot confuse them.
//!
//! [`redis`] runs real `redis-server` processes, for the Redis adapter and
//! chain tests; each test file owns a range of ports (see there).

pub mod mongo;
pub mod postgres;
pub mod redis;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::{Region, SdkConfig};
use aws_sdk_ec2::types::{Filter, InstanceType, ResourceType, Snapshot, Tag, TagSpecification, VolumeType};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;

/// The shared AWS configuration for `region`, pointing at the local AWS.
/// Panics, saying what to do, when no local endpoint is configured: these
/// tests must never run against a real account.
pub async fn sdk(region: &'static str) -> SdkConfig {
    hold_file_lock();
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        endpoint.starts_with("http://127.") || endpoint.starts_with("http://localhost"),
        "integration tests need the local AWS on loopback (AWS_ENDPOINT_URL is {endpoint:?}): \
         run scripts/test.sh, or scripts/local-aws.sh start && eval \"$(scripts/local-aws.sh env)\""
    );
    shared::aws::load_sdk_config()
        .await
        .expect("AWS config")
        .to_builder()
        .region(Region::new(region))
        .build()
}

/// The local AWS for `region`, emptied of what earlier runs of the same test
/// left there (each test has a region of its own, so this touches no other
/// test's resources).
pub async fn fresh(region: &'static str) -> SdkConfig {
    let config = sdk(region).await;
    Ec2::new(&config).clear().await;
    config
}

/// A suffix no other call of this run and no earlier run uses: the time,
/// and a counter so that two tests starting in the same clock tick (a
/// coarse clock, a VM) still differ.
pub fn unique() -> String {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    format!("{:x}{:03x}", nanos % 0xffff_ffff_ffff, call % 0x1000)
}

/// How long a test file waits for another run of itself on this machine.
const FILE_LOCK_WAIT: Duration = Duration::from_secs(30 * 60);

/// Makes this test process the only run of its test file on the machine,
/// for as long as it lives (the first call takes the lock, later calls
/// return at once; the kernel releases it when the process ends, however
/// it ends).
///
/// Each test file owns fixed loopback addresses and ports (see
/// [`redis`]) and its own moto regions. Two runs of one file at once, from
/// two clones or a developer's run beside CI, would reach each other's
/// servers: a server that cannot bind its port, a chain command or a
/// failover of one run sent to a node of the other. Called from [`sdk`]
/// and from every server start. Without a path for the running test binary
/// (it was deleted under us) there is no name to lock, and the run goes on
/// unlocked.
pub fn hold_file_lock() {
    static LOCK: OnceLock<Option<std::fs::File>> = OnceLock::new();
    LOCK.get_or_init(take_file_lock);
}

fn take_file_lock() -> Option<std::fs::File> {
    use std::io::Write as _;
    use std::os::fd::AsRawFd as _;
    let exe = std::env::current_exe().ok()?;
    // `redis_chain-41f0356b41b3bfac`: the file is `redis_chain`, whatever
    // clone or profile built it.
    let stem = exe.file_stem()?.to_string_lossy().into_owned();
    let file = stem.rsplit_once('-').map_or(stem.as_str(), |(f, _)| f).to_owned();
    let path = std::env::temp_dir().join(format!("ninelives-tests-{file}.lock"));
    let mut lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let started = std::time::Instant::now();
    let mut told = false;
    // SAFETY: flock(2) on a descriptor `lock` owns and keeps open.
    while unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let holder = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            started.elapsed() < FILE_LOCK_WAIT,
            "another run of the {file} tests (pid {}) has held {} for {} s: \
             this file's servers use fixed loopback ports, so two runs cannot share the machine",
            holder.trim(),
            path.display(),
            FILE_LOCK_WAIT.as_secs()
        );
        if !told {
            // Straight to stderr: libtest captures eprintln! of a test.
            let _ = writeln!(
                std::io::stderr(),
                "waiting for another run of the {file} tests (pid {}) to end: its loopback ports are this run's too",
                holder.trim()
            );
            told = true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    // The holder's pid, for the message of a run that has to wait.
    let _ = lock.set_len(0);
    let _ = writeln!(lock, "{}", std::process::id());
    Some(lock)
}

/// A settings map, as the functions read them.
pub fn env<'a>(pairs: &[(&'a str, &'a str)]) -> HashMap<&'a str, &'a str> {
    pairs.iter().copied().collect()
}

/// An invocation of `payload` with a fresh request id and a deadline.
pub fn event(payload: Value, deadline_in: Duration) -> LambdaEvent<Value> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut context = Context::default();
    context.request_id = format!("test-{}-{:x}", unique(), next_count());
    context.deadline = (now + deadline_in).as_millis() as u64;
    LambdaEvent::new(payload, context)
}

/// Distinct per call within a process: with `unique()`, enough for request ids.
fn next_count() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A fixture from `events-fixtures/`.
pub fn fixture(relative: &str) -> Value {
    let path = root().join("events-fixtures").join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// EC2 in one region, with helpers to build a fleet and read it back.
pub struct Ec2 {
    pub client: aws_sdk_ec2::Client,
}

pub struct Instance {
    pub id: String,
    pub az: String,
    pub root_volume: String,
}

fn tags_spec(kind: ResourceType, tags: &[(&str, &str)]) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(
            tags.iter()
                .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
                .collect(),
        ))
        .build()
}

impl Ec2 {
    pub fn new(sdk: &SdkConfig) -> Self {
        Ec2 {
            client: aws_sdk_ec2::Client::new(sdk),
        }
    }

    pub async fn instance(&self) -> Instance {
        let out = self
            .client
            .run_instances()
            .image_id("ami-12345678")
            .instance_type(InstanceType::T3Micro)
            .min_count(1)
            .max_count(1)
            .send()
            .await
            .expect("RunInstances");
        let i = &out.instances()[0];
        Instance {
            id: i.instance_id().unwrap().to_owned(),
            az: i
                .placement()
                .and_then(|p| p.availability_zone())
                .unwrap()
                .to_owned(),
            root_volume: i.block_device_mappings()[0]
                .ebs()
                .unwrap()
                .volume_id()
                .unwrap()
                .to_owned(),
        }
    }

    /// A 10 GiB volume with `tags`, attached at `device` of `instance` if given.
    pub async fn volume(&self, az: &str, tags: &[(&str, &str)], attach: Option<(&Instance, &str)>) -> String {
        let mut request = self
            .client
            .create_volume()
            .availability_zone(az)
            .size(10)
            .volume_type(VolumeType::Gp3);
        if !tags.is_empty() {
            request = request.tag_specifications(tags_spec(ResourceType::Volume, tags));
        }
        let id = request
            .send()
            .await
            .expect("CreateVolume")
            .volume_id()
            .unwrap()
            .to_owned();
        if let Some((instance, device)) = attach {
            self.client
                .attach_volume()
                .volume_id(&id)
                .instance_id(&instance.id)
                .device(device)
                .send()
                .await
                .expect("AttachVolume");
        }
        id
    }

    /// A snapshot of `volume` with `tags`, made directly (not by ninelives).
    pub async fn snapshot(&self, volume: &str, tags: &[(&str, &str)]) -> String {
        self.client
            .create_snapshot()
            .volume_id(volume)
            .tag_specifications(tags_spec(ResourceType::Snapshot, tags))
            .send()
            .await
            .expect("CreateSnapshot")
            .snapshot_id()
            .unwrap()
            .to_owned()
    }

    /// Every snapshot this account owns in the region, every page.
    pub async fn snapshots(&self) -> Vec<Snapshot> {
        self.client
            .describe_snapshots()
            .owner_ids("self")
            .into_paginator()
            .page_size(1000)
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .expect("DescribeSnapshots")
    }

    /// Snapshots taken of `volume`.
    pub async fn snapshots_of(&self, volume: &str) -> Vec<Snapshot> {
        self.client
            .describe_snapshots()
            .owner_ids("self")
            .filters(Filter::builder().name("volume-id").values(volume).build())
            .send()
            .await
            .expect("DescribeSnapshots")
            .snapshots()
            .to_vec()
    }

    /// Deletes every AMI, snapshot, volume and instance of the region.
    pub async fn clear(&self) {
        let images = self
            .client
            .describe_images()
            .owners("self")
            .send()
            .await
            .expect("DescribeImages");
        for image in images.images() {
            self.client
                .deregister_image()
                .image_id(image.image_id().unwrap())
                .send()
                .await
                .expect("DeregisterImage");
        }
        self.clear_volumes().await;
        let instances = self
            .client
            .describe_instances()
            .send()
            .await
            .expect("DescribeInstances");
        let ids: Vec<String> = instances
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter_map(|i| i.instance_id().map(str::to_owned))
            .collect();
        if !ids.is_empty() {
            self.client
                .terminate_instances()
                .set_instance_ids(Some(ids))
                .send()
                .await
                .expect("TerminateInstances");
        }
    }

    /// Deletes every snapshot and volume of the region, detaching them
    /// first, and leaves its instances (and AMIs) alone.
    pub async fn clear_volumes(&self) {
        for snapshot in self.snapshots().await {
            self.client
                .delete_snapshot()
                .snapshot_id(snapshot.snapshot_id().unwrap())
                .send()
                .await
                .expect("DeleteSnapshot");
        }
        let volumes = self
            .client
            .describe_volumes()
            .send()
            .await
            .expect("DescribeVolumes");
        for volume in volumes.volumes() {
            let id = volume.volume_id().unwrap();
            for a in volume.attachments() {
                // moto needs the instance and device to detach.
                self.client
                    .detach_volume()
                    .volume_id(id)
                    .set_instance_id(a.instance_id().map(str::to_owned))
                    .set_device(a.device().map(str::to_owned))
                    .send()
                    .await
                    .expect("DetachVolume");
            }
            self.client
                .delete_volume()
                .volume_id(id)
                .send()
                .await
                .expect("DeleteVolume");
        }
    }

    /// Registers an AMI whose root is `snapshot`.
    pub async fn image_of(&self, snapshot: &str) -> String {
        use aws_sdk_ec2::types::{BlockDeviceMapping, EbsBlockDevice};
        self.client
            .register_image()
            .name(format!("ninelives-test-{}", unique()))
            .root_device_name("/dev/xvda")
            .block_device_mappings(
                BlockDeviceMapping::builder()
                    .device_name("/dev/xvda")
                    .ebs(EbsBlockDevice::builder().snapshot_id(snapshot).build())
                    .build(),
            )
            .send()
            .await
            .expect("RegisterImage")
            .image_id()
            .unwrap()
            .to_owned()
    }
}

/// The value of tag `key` on a snapshot.
pub fn tag<'a>(snapshot: &'a Snapshot, key: &str) -> Option<&'a str> {
    snapshot
        .tags()
        .iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

/// Snapshot ids, sorted.
pub fn ids(snapshots: &[Snapshot]) -> Vec<String> {
    let mut v: Vec<String> = snapshots
        .iter()
        .filter_map(|s| s.snapshot_id().map(str::to_owned))
        .collect();
    v.sort();
    v
}

/// `n` seconds as a deadline, for events.
pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The lifecycle actions the local AWS recorded (its emulator extension,
/// `GET /_ninelives/lifecycle-actions`) for one region and group: each with
/// `action`, `instance_id`, `token` and `result`.
pub fn lifecycle_actions(region: &str, group: &str) -> Vec<Value> {
    use std::io::{Read, Write};
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL");
    let authority = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(authority).expect("connect to the local AWS");
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(
        stream,
        "GET /_ninelives/lifecycle-actions?region={region}&group={group} HTTP/1.0\r\nHost: {authority}\r\n\r\n"
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    serde_json::from_str(body).expect("a JSON array")
}

/// The completions (`CompleteLifecycleAction`) among recorded actions, as
/// (instance id, token, result).
pub fn completions(region: &str, group: &str) -> Vec<(String, String, String)> {
    lifecycle_actions(region, group)
        .into_iter()
        .filter(|a| a["action"] == "CompleteLifecycleAction")
        .map(|a| {
            let s = |k: &str| a[k].as_str().unwrap_or_default().to_owned();
            (s("instance_id"), s("token"), s("result"))
        })
        .collect()
}

/// Heartbeats (`RecordLifecycleActionHeartbeat`) recorded for `instance`.
pub fn heartbeats(region: &str, group: &str, instance: &str) -> usize {
    lifecycle_actions(region, group)
        .iter()
        .filter(|a| a["action"] == "RecordLifecycleActionHeartbeat" && a["instance_id"] == instance)
        .count()
}

/// An Auto Scaling group of one with lifecycle hooks, in the local AWS.
pub struct Group {
    pub client: aws_sdk_autoscaling::Client,
    pub name: String,
    pub region: &'static str,
}

pub const LAUNCH_HOOK: &str = "ninelives-launch";
pub const TERMINATE_HOOK: &str = "ninelives-terminate";

impl Group {
    /// A group of one in `<region>a` whose instances get `tags`, with a
    /// launch and a terminate hook. Auto Scaling starts its instance at once.
    pub async fn create(sdk: &SdkConfig, region: &'static str, tags: &[(&str, &str)]) -> Group {
        use aws_sdk_autoscaling::types::{LaunchTemplateSpecification, Tag as AsgTag};
        use aws_sdk_ec2::types::RequestLaunchTemplateData;
        let name = format!("kate-{}", unique());
        aws_sdk_ec2::Client::new(sdk)
            .create_launch_template()
            .launch_template_name(&name)
            .launch_template_data(
                RequestLaunchTemplateData::builder()
                    .image_id("ami-12345678")
                    .instance_type(InstanceType::T3Micro)
                    .build(),
            )
            .send()
            .await
            .expect("CreateLaunchTemplate");
        let client = aws_sdk_autoscaling::Client::new(sdk);
        client
            .create_auto_scaling_group()
            .auto_scaling_group_name(&name)
            .launch_template(
                LaunchTemplateSpecification::builder()
                    .launch_template_name(&name)
                    .build(),
            )
            .min_size(1)
            .max_size(1)
            .desired_capacity(1)
            .availability_zones(format!("{region}a"))
            .set_tags(Some(
                tags.iter()
                    .map(|(k, v)| {
                        AsgTag::builder()
                            .key(*k)
                            .value(*v)
                            .propagate_at_launch(true)
                            .resource_id(&name)
                            .resource_type("auto-scaling-group")
                            .build()
                    })
                    .collect(),
            ))
            .send()
            .await
            .expect("CreateAutoScalingGroup");
        for (hook, transition) in [
            (LAUNCH_HOOK, "autoscaling:EC2_INSTANCE_LAUNCHING"),
            (TERMINATE_HOOK, "autoscaling:EC2_INSTANCE_TERMINATING"),
        ] {
            client
                .put_lifecycle_hook()
                .auto_scaling_group_name(&name)
                .lifecycle_hook_name(hook)
                .lifecycle_transition(transition)
                .heartbeat_timeout(300)
                .default_result("ABANDON")
                .send()
                .await
                .expect("PutLifecycleHook");
        }
        Group { client, name, region }
    }

    /// The group's instance ids.
    pub async fn instances(&self) -> Vec<String> {
        let out = self
            .client
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(&self.name)
            .send()
            .await
            .expect("DescribeAutoScalingGroups");
        out.auto_scaling_groups()
            .iter()
            .flat_map(|g| g.instances())
            .filter_map(|i| i.instance_id().map(str::to_owned))
            .collect()
    }

    /// Terminates `instance` and lets the group replace it; returns the
    /// replacement. (The local AWS runs no terminate hook: tests send that
    /// event themselves.)
    pub async fn replace(&self, instance: &str) -> String {
        self.client
            .terminate_instance_in_auto_scaling_group()
            .instance_id(instance)
            .should_decrement_desired_capacity(false)
            .send()
            .await
            .expect("TerminateInstanceInAutoScalingGroup");
        let now = self.instances().await;
        now.into_iter()
            .find(|i| i != instance)
            .expect("a replacement instance")
    }

    /// A lifecycle action event for `instance` as EventBridge delivers it,
    /// started now, with a token of its own.
    pub fn event(&self, transition: &str, instance: &str) -> Value {
        let launch = transition == "launch";
        let mut e = fixture(if launch {
            "lifecycle-hook/eventbridge-launch.json"
        } else {
            "lifecycle-hook/eventbridge-terminate.json"
        });
        e["region"] = Value::from(self.region);
        e["time"] = Value::from(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        let d = &mut e["detail"];
        d["AutoScalingGroupName"] = Value::from(self.name.as_str());
        d["LifecycleHookName"] = Value::from(if launch { LAUNCH_HOOK } else { TERMINATE_HOOK });
        d["EC2InstanceId"] = Value::from(instance);
        d["LifecycleActionToken"] = Value::from(token());
        e
    }
}

/// A fresh lifecycle action token (a UUID's shape).
pub fn token() -> String {
    let n = u128::from_str_radix(&format!("{}{:08x}", unique(), next_count()), 16).unwrap_or(7);
    let h = format!(
        "{:032x}",
        n.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
    );
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// An SNS topic with a new SQS queue subscribed to it (raw delivery), names
/// starting with `prefix`: the queue receives every notification a run
/// publishes. (topic ARN, queue URL.)
pub async fn topic_with_queue(sdk: &SdkConfig, prefix: &str) -> (String, String) {
    let sns = aws_sdk_sns::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let topic = sns
        .create_topic()
        .name(format!("{prefix}-{}", unique()))
        .send()
        .await
        .expect("CreateTopic")
        .topic_arn()
        .expect("an ARN")
        .to_owned();
    let queue = sqs
        .create_queue()
        .queue_name(format!("{prefix}-inbox-{}", unique()))
        .send()
        .await
        .expect("CreateQueue")
        .queue_url()
        .expect("a URL")
        .to_owned();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("GetQueueAttributes")
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn).cloned())
        .expect("a queue ARN");
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .expect("Subscribe");
    (topic, queue)
}

/// A Route 53 hosted zone for `domain` in the local AWS; its id.
pub async fn hosted_zone(sdk: &SdkConfig, domain: &str) -> String {
    let out = aws_sdk_route53::Client::new(sdk)
        .create_hosted_zone()
        .name(domain)
        .caller_reference(format!("ninelives-test-{}-{:x}", unique(), next_count()))
        .send()
        .await
        .expect("CreateHostedZone");
    let id = out.hosted_zone().expect("a hosted zone").id();
    id.trim_start_matches("/hostedzone/").to_owned()
}

/// An EC2 instance in the local AWS tagged with `role` in `cluster`,
/// reached at `endpoint` (`host:port`); its id.
pub async fn tagged_instance(sdk: &SdkConfig, role: &str, cluster: &str, endpoint: &str) -> String {
    use aws_sdk_ec2::types::Tag;
    let ec2 = Ec2::new(sdk);
    let id = ec2.instance().await.id;
    ec2.client
        .create_tags()
        .resources(&id)
        .tags(Tag::builder().key("ninelives:role").value(role).build())
        .tags(Tag::builder().key("ninelives:cluster").value(cluster).build())
        .tags(Tag::builder().key("ninelives:endpoint").value(endpoint).build())
        .send()
        .await
        .expect("CreateTags");
    id
}

/// Sends `signal` to `pid`, a child process the calling test started and
/// has not reaped (a server of `redis.rs` or `postgres.rs`).
pub fn signal_child(pid: u32, signal: libc::c_int) {
    let pid = pid as libc::pid_t;
    // SAFETY: kill(2) on our own child's pid, which stays ours (not
    // reused) until we reap it with wait.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {signal}): {}",
        std::io::Error::last_os_error()
    );
}

/// Makes `command`'s process die (SIGKILL) with the thread that spawns it
/// (`PR_SET_PDEATHSIG`), and refuse to start if the test process is
/// already gone: a server of `redis.rs` or `postgres.rs` never outlives its
/// test.
pub fn die_with_parent(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt as _;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: prctl and getppid are async-signal-safe system calls and
    // touch no memory of the parent.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                return Err(std::io::Error::other("the test process is gone"));
            }
            Ok(())
        });
    }
}
