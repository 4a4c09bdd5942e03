#!/usr/bin/env python3
"""Smoke test of the local AWS emulator (local/moto_launcher.py) with boto3.

Run it with `scripts/local-aws.sh selftest` (the server must be running; the
endpoint comes from AWS_ENDPOINT_URL). It asserts each emulator extension and
works in its own region (NINELIVES_SELFTEST_REGION, default eu-north-1) with
names unique to the run, so other users of the same server are not disturbed;
it removes what it created, including its recorded lifecycle actions. It is
bounded: it gives up after 50 seconds. Exit 0 when all checks pass, 1 with a
"FAIL:" line on the first failing check, 2 when it cannot run at all.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from typing import Any, Callable

import boto3
import botocore.config
import botocore.exceptions

REGION = os.environ.get("NINELIVES_SELFTEST_REGION", "eu-north-1")
TIME_LIMIT_S = 50
RUN = uuid.uuid4().hex[:8]
TAG_KEY = "ninelives-selftest"


class CheckFailed(Exception):
    pass


def say(message: str) -> None:
    print(f"selftest: {message}", file=sys.stderr, flush=True)


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def expect_error(code: str, call: Callable[[], Any], status: int = 400) -> botocore.exceptions.ClientError:
    try:
        call()
    except botocore.exceptions.ClientError as exc:
        got = exc.response["Error"].get("Code")
        got_status = exc.response["ResponseMetadata"].get("HTTPStatusCode")
        expect(got == code, f"expected error {code}, got {got}: {exc}")
        expect(got_status == status, f"expected HTTP {status} with {code}, got {got_status}")
        return exc
    raise CheckFailed(f"expected error {code}, the call succeeded")


def expect_message(error: botocore.exceptions.ClientError, message: str) -> None:
    got = error.response["Error"].get("Message")
    expect(got == message, f"expected message {message!r}, got {got!r}")


def concurrently(calls: list[Callable[[], Any]]) -> list[Any]:
    """Starts all calls at once; their results, a ClientError for a failed one."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[Any] = [None] * len(calls)
    crashes: list[BaseException] = []

    def run(index: int) -> None:
        barrier.wait()
        try:
            outcomes[index] = calls[index]()
        except botocore.exceptions.ClientError as exc:
            outcomes[index] = exc
        except Exception as exc:  # reported by the caller's thread
            crashes.append(exc)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    expect(not crashes, f"concurrent calls failed: {crashes}")
    return outcomes


def http_json(endpoint: str, path: str, method: str = "GET") -> Any:
    request = urllib.request.Request(endpoint.rstrip("/") + path, method=method)
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def tag_spec(resource_type: str) -> list[dict[str, Any]]:
    return [{"ResourceType": resource_type, "Tags": [{"Key": TAG_KEY, "Value": RUN}]}]


RUN_FILTER = [{"Name": f"tag:{TAG_KEY}", "Values": [RUN]}]


def walk_pages(call: Callable[..., dict[str, Any]], list_key: str, page_size: int, **kwargs: Any) -> list[list[str]]:
    """Ids page by page, following NextToken by hand (no SDK paginator)."""
    pages: list[list[str]] = []
    token = None
    while True:
        args = dict(kwargs, MaxResults=page_size)
        if token:
            args["NextToken"] = token
        answer = call(**args)
        items = answer[list_key]
        if list_key == "Reservations":
            pages.append([r["ReservationId"] for r in items])
        else:
            pages.append([item[list_key[:-1] + "Id"] for item in items])
        token = answer.get("NextToken")
        if not token:
            return pages
        expect(len(pages) < 50, f"{list_key}: paging does not end")


def check_pages(name: str, pages: list[list[str]], expected: set[str], page_size: int) -> None:
    seen = [item for page in pages for item in page]
    expect(len(seen) == len(set(seen)), f"{name}: an item came back twice: {pages}")
    expect(set(seen) == expected, f"{name}: visited {sorted(seen)}, expected {sorted(expected)}")
    sizes = [len(p) for p in pages]
    full, rest = divmod(len(expected), page_size)
    expect(sizes == [page_size] * full + ([rest] if rest else []), f"{name}: page sizes {sizes}")
    say(f"ok: {name} pages {sizes} visit all {len(expected)} exactly once")


def main() -> int:
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        say('AWS_ENDPOINT_URL is not set; run eval "$(scripts/local-aws.sh env)" or scripts/local-aws.sh selftest')
        return 2
    try:
        info = http_json(endpoint, "/_ninelives/info")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        say(f"no ninelives local AWS at {endpoint} ({exc}); run scripts/local-aws.sh start")
        return 2

    def on_alarm(_signum: int, _frame: Any) -> None:
        raise CheckFailed(f"took longer than {TIME_LIMIT_S} s")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TIME_LIMIT_S)
    started = time.monotonic()
    config = botocore.config.Config(
        retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=30
    )
    session = boto3.session.Session(
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        region_name=REGION,
    )
    ec2 = session.client("ec2", endpoint_url=endpoint, config=config)
    asg = session.client("autoscaling", endpoint_url=endpoint, config=config)
    route53 = session.client("route53", endpoint_url=endpoint, config=config)
    cleanup: list[Callable[[], Any]] = []
    say(f"endpoint {endpoint}, region {REGION}, run {RUN}, moto {info.get('moto')}")
    try:
        run_checks(endpoint, info, ec2, asg, route53, cleanup)
    except CheckFailed as exc:
        say(f"FAIL: {exc}")
        return 1
    except botocore.exceptions.ClientError as exc:
        say(f"FAIL: unexpected AWS error: {exc}")
        return 1
    finally:
        signal.alarm(0)
        for undo in reversed(cleanup):
            try:
                undo()
            except Exception as exc:  # cleanup is best effort
                say(f"cleanup: {exc}")
    say(f"all checks passed in {time.monotonic() - started:.1f} s")
    return 0


def run_checks(
    endpoint: str, info: dict[str, Any], ec2: Any, asg: Any, route53: Any, cleanup: list[Callable[[], Any]]
) -> None:
    expected_ext = {
        "no_default_amis", "index_tag_lookup", "page_describe_calls", "ami_snapshots_in_use", "lifecycle_actions",
        "create_volume_client_token", "attach_volume_checks", "record_set_identifier_paging",
        "atomic_change_batches", "fifo_redelivery_order",
    }
    expect(info.get("launcher") == "ninelives-local-aws", f"/_ninelives/info: not our launcher: {info}")
    missing = expected_ext - set(info.get("extensions", []))
    expect(not missing, f"extensions not active: {sorted(missing)}")
    say("ok: launcher info lists all extensions")

    # a. no default AMIs
    amazon = ec2.describe_images(Owners=["amazon"])["Images"]
    expect(not amazon, f"{len(amazon)} Amazon-owned (default) AMIs are loaded")
    public = [i["ImageId"] for i in ec2.describe_images()["Images"] if i.get("Public")]
    expect(not public, f"public (default) AMIs are loaded: {public[:5]}")
    say("ok: no default AMIs")

    # c. paging: snapshots
    zone = f"{REGION}a"
    volume = ec2.create_volume(Size=1, AvailabilityZone=zone, TagSpecifications=tag_spec("volume"))["VolumeId"]
    snapshots = []
    for _ in range(12):
        snapshots.append(ec2.create_snapshot(VolumeId=volume, TagSpecifications=tag_spec("snapshot"))["SnapshotId"])

    def delete_snapshots() -> None:
        for snapshot_id in snapshots:
            try:
                ec2.delete_snapshot(SnapshotId=snapshot_id)
            except botocore.exceptions.ClientError:
                pass

    cleanup.append(lambda: ec2.delete_volume(VolumeId=volume))
    cleanup.append(delete_snapshots)

    pages = walk_pages(ec2.describe_snapshots, "Snapshots", 5, Filters=RUN_FILTER)
    check_pages("DescribeSnapshots MaxResults=5", pages, set(snapshots), 5)
    again = walk_pages(ec2.describe_snapshots, "Snapshots", 5, Filters=RUN_FILTER)
    expect(again == pages, "DescribeSnapshots paging is not deterministic")
    paginated = [
        s["SnapshotId"]
        for page in ec2.get_paginator("describe_snapshots").paginate(
            Filters=RUN_FILTER, PaginationConfig={"PageSize": 5}
        )
        for s in page["Snapshots"]
    ]
    expect(sorted(paginated) == sorted(snapshots), "boto3's paginator does not see all snapshots")
    whole = ec2.describe_snapshots(Filters=RUN_FILTER)
    expect(len(whole["Snapshots"]) == 12 and not whole.get("NextToken"), "without MaxResults: not all in one page")
    tagged = all({"Key": TAG_KEY, "Value": RUN} in s.get("Tags", []) for s in whole["Snapshots"])
    expect(tagged, "snapshots do not carry their tags")
    say("ok: without MaxResults all 12 in one page, with their tags")
    for bad in (4, 1001):
        expect_error("InvalidParameterValue", lambda: ec2.describe_snapshots(MaxResults=bad))
    say("ok: MaxResults 4 and 1001 rejected with InvalidParameterValue")
    expect_error(
        "InvalidParameterCombination", lambda: ec2.describe_snapshots(MaxResults=5, SnapshotIds=snapshots[:2])
    )
    expect_error("InvalidPaginationToken", lambda: ec2.describe_snapshots(MaxResults=5, NextToken="bogus"))
    say("ok: MaxResults with SnapshotIds and a bogus NextToken rejected")
    first = ec2.describe_snapshots(MaxResults=5, Filters=RUN_FILTER)
    gone = first["Snapshots"][0]["SnapshotId"]
    ec2.delete_snapshot(SnapshotId=gone)
    rest = []
    token = first["NextToken"]
    while token:
        answer = ec2.describe_snapshots(MaxResults=5, Filters=RUN_FILTER, NextToken=token)
        rest += [s["SnapshotId"] for s in answer["Snapshots"]]
        token = answer.get("NextToken")
    seen = [s["SnapshotId"] for s in first["Snapshots"]] + rest
    expect(sorted(seen) == sorted(snapshots), "deleting a snapshot between pages made paging skip one")
    snapshots.remove(gone)
    say("ok: a delete between pages does not make later pages skip anything")

    # c. paging: volumes
    volumes = [volume] + [
        ec2.create_volume(Size=1, AvailabilityZone=zone, TagSpecifications=tag_spec("volume"))["VolumeId"]
        for _ in range(5)
    ]
    for extra in volumes[1:]:
        cleanup.append(lambda v=extra: ec2.delete_volume(VolumeId=v))
    check_pages(
        "DescribeVolumes MaxResults=5",
        walk_pages(ec2.describe_volumes, "Volumes", 5, Filters=RUN_FILTER),
        set(volumes),
        5,
    )
    expect_error("InvalidParameterValue", lambda: ec2.describe_volumes(MaxResults=4))

    # d. AMI in use + c. paging: images
    images = []
    for index in range(6):
        image = ec2.register_image(
            Name=f"ninelives-selftest-{RUN}-{index}",
            RootDeviceName="/dev/xvda",
            VirtualizationType="hvm",
            Architecture="x86_64",
            BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snapshots[index]}}],
            TagSpecifications=tag_spec("image"),
        )["ImageId"]
        images.append(image)
        cleanup.append(lambda i=image: i in images and ec2.deregister_image(ImageId=i))
    ec2.create_tags(Resources=images, Tags=[{"Key": TAG_KEY, "Value": RUN}])
    check_pages(
        "DescribeImages MaxResults=5",
        walk_pages(ec2.describe_images, "Images", 5, Owners=["self"], Filters=RUN_FILTER),
        set(images),
        5,
    )
    shown = ec2.describe_images(ImageIds=[images[0]])["Images"][0]
    shown_snapshots = [m.get("Ebs", {}).get("SnapshotId") for m in shown["BlockDeviceMappings"]]
    expect(shown_snapshots == [snapshots[0]], f"DescribeImages shows {shown_snapshots}, registered {snapshots[0]}")
    expect(shown.get("RootDeviceName") == "/dev/xvda", f"RootDeviceName {shown.get('RootDeviceName')}")
    invented = ec2.describe_snapshots(Filters=[{"Name": "description", "Values": [f"*{images[0]}*"]}])["Snapshots"]
    expect(not invented, f"RegisterImage created a snapshot: {invented}")
    say("ok: RegisterImage keeps its block device mappings and creates no snapshot")
    error = expect_error("InvalidSnapshot.InUse", lambda: ec2.delete_snapshot(SnapshotId=snapshots[0]))
    expect(images[0] in error.response["Error"].get("Message", ""), f"InUse message names no AMI: {error}")
    ec2.deregister_image(ImageId=images[0])
    images.remove(images[0])
    ec2.delete_snapshot(SnapshotId=snapshots[0])
    snapshots.remove(snapshots[0])
    expect_error(
        "InvalidSnapshot.NotFound",
        lambda: ec2.register_image(
            Name=f"ninelives-selftest-{RUN}-missing",
            RootDeviceName="/dev/xvda",
            BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": "snap-00000000000000000"}}],
        ),
    )
    say("ok: DeleteSnapshot of a RegisterImage snapshot is InvalidSnapshot.InUse (HTTP 400) until deregistered")

    # c. paging: instances (one reservation per RunInstances)
    reservations = []
    for _ in range(6):
        answer = ec2.run_instances(
            ImageId=images[-1], MinCount=1, MaxCount=1, InstanceType="t3.micro",
            TagSpecifications=tag_spec("instance"),
        )
        reservations.append(answer["ReservationId"])
        ids = [i["InstanceId"] for i in answer["Instances"]]
        cleanup.append(lambda ids=ids: ec2.terminate_instances(InstanceIds=ids))
    check_pages(
        "DescribeInstances MaxResults=5",
        walk_pages(ec2.describe_instances, "Reservations", 5, Filters=RUN_FILTER),
        set(reservations),
        5,
    )
    whole = ec2.describe_instances(Filters=RUN_FILTER)
    expect(len(whole["Reservations"]) == 6 and not whole.get("NextToken"), "DescribeInstances without MaxResults")
    instance = whole["Reservations"][0]["Instances"][0]
    devices = [m["DeviceName"] for m in instance.get("BlockDeviceMappings", [])]
    expect(instance.get("RootDeviceName") == "/dev/xvda" and devices == ["/dev/xvda"],
           f"instance from a /dev/xvda AMI: RootDeviceName {instance.get('RootDeviceName')}, devices {devices}")
    say("ok: an instance of a RegisterImage AMI has its root volume at the AMI's RootDeviceName")
    expect_error("InvalidParameterValue", lambda: ec2.describe_instances(MaxResults=1001))

    # e. lifecycle actions
    group = f"ninelives-selftest-{RUN}"
    hook = "terminate-hook"
    template = ec2.create_launch_template(
        LaunchTemplateName=group, LaunchTemplateData={"ImageId": images[-1], "InstanceType": "t3.micro"}
    )["LaunchTemplate"]["LaunchTemplateId"]
    cleanup.append(lambda: ec2.delete_launch_template(LaunchTemplateId=template))
    asg.create_auto_scaling_group(
        AutoScalingGroupName=group,
        LaunchTemplate={"LaunchTemplateId": template, "Version": "$Latest"},
        MinSize=0, MaxSize=1, DesiredCapacity=1, AvailabilityZones=[zone],
    )
    cleanup.append(lambda: asg.delete_auto_scaling_group(AutoScalingGroupName=group, ForceDelete=True))
    asg.put_lifecycle_hook(
        AutoScalingGroupName=group, LifecycleHookName=hook,
        LifecycleTransition="autoscaling:EC2_INSTANCE_TERMINATING", HeartbeatTimeout=300, DefaultResult="CONTINUE",
    )
    members = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"][0]["Instances"]
    expect(len(members) == 1, f"the group has {len(members)} instances, expected 1")
    instance_id = members[0]["InstanceId"]
    cleanup.append(lambda: ec2.terminate_instances(InstanceIds=[instance_id]))
    token, token2, token3 = (str(uuid.uuid4()) for _ in range(3))
    dead = ec2.run_instances(ImageId=images[-1], MinCount=1, MaxCount=1, InstanceType="t3.micro",
                             TagSpecifications=tag_spec("instance"))["Instances"][0]["InstanceId"]
    ec2.terminate_instances(InstanceIds=[dead])
    unknown_instance = "i-0123456789abcdef0"
    bodies: list[bytes] = []
    asg.meta.events.register(
        "after-call.auto-scaling.*", lambda http_response, **_: bodies.append(http_response.content)
    )
    common = {"AutoScalingGroupName": group, "LifecycleHookName": hook}
    by_token = f"No active Lifecycle Action found with token {token}"

    def by_instance(instance: str) -> str:
        return f"No active Lifecycle Action found with instance ID {instance}"

    asg.record_lifecycle_action_heartbeat(**common, LifecycleActionToken=token)
    asg.complete_lifecycle_action(
        **common, LifecycleActionToken=token, InstanceId=instance_id, LifecycleActionResult="CONTINUE"
    )
    for name in ("CompleteLifecycleActionResponse", "RecordLifecycleActionHeartbeatResponse"):
        expect(any(name.encode() in b and b"<RequestId>" in b for b in bodies), f"no {name} with ResponseMetadata")
    say("ok: a heartbeat, then CompleteLifecycleAction (token and instance) accepted for a real group and hook")
    expect_message(expect_error("ValidationError", lambda: asg.complete_lifecycle_action(
        **common, LifecycleActionToken=token, LifecycleActionResult="ABANDON")), by_token)
    expect_message(expect_error("ValidationError", lambda: asg.record_lifecycle_action_heartbeat(
        **common, LifecycleActionToken=token)), by_token)
    say("ok: after it: Complete and heartbeat with its token rejected (ValidationError, ...with token T)")
    expect_message(expect_error("ValidationError", lambda: asg.complete_lifecycle_action(
        **common, InstanceId=instance_id, LifecycleActionResult="ABANDON")), by_instance(instance_id))
    expect_message(expect_error("ValidationError", lambda: asg.record_lifecycle_action_heartbeat(
        **common, InstanceId=instance_id)), by_instance(instance_id))
    say("ok: after it: Complete and heartbeat with only its instance id rejected (...with instance ID I)")
    asg.complete_lifecycle_action(
        **common, LifecycleActionToken=token2, InstanceId=instance_id, LifecycleActionResult="ABANDON"
    )
    say("ok: a different token for the same instance accepted")
    for not_live in (unknown_instance, dead):
        expect_message(expect_error("ValidationError", lambda: asg.complete_lifecycle_action(
            **common, InstanceId=not_live, LifecycleActionResult="CONTINUE")), by_instance(not_live))
        expect_message(expect_error("ValidationError", lambda: asg.record_lifecycle_action_heartbeat(
            **common, InstanceId=not_live)), by_instance(not_live))
    say("ok: an unknown and a terminated instance id rejected (...with instance ID I)")
    outcomes = concurrently([lambda: asg.complete_lifecycle_action(
        **common, LifecycleActionToken=token3, LifecycleActionResult="CONTINUE")] * 8)
    accepted = [o for o in outcomes if not isinstance(o, botocore.exceptions.ClientError)]
    rejected = [o.response["Error"] for o in outcomes if isinstance(o, botocore.exceptions.ClientError)]
    expect(len(accepted) == 1, f"8 concurrent Completes of one token: {len(accepted)} accepted, expected 1")
    expect(all(e.get("Code") == "ValidationError" and e.get("Message") == f"No active Lifecycle Action found with token {token3}"
               for e in rejected), f"concurrent Completes rejected with {rejected}")
    say("ok: 8 concurrent Completes of one token: exactly 1 accepted, 7 ValidationError")
    expect_error("ValidationError", lambda: asg.complete_lifecycle_action(
        AutoScalingGroupName=group, LifecycleHookName="no-such-hook", InstanceId=instance_id,
        LifecycleActionResult="CONTINUE"))
    expect_error("ValidationError", lambda: asg.record_lifecycle_action_heartbeat(
        AutoScalingGroupName=group, LifecycleHookName="no-such-hook", InstanceId=instance_id))
    expect_error("ValidationError", lambda: asg.complete_lifecycle_action(
        AutoScalingGroupName=f"{group}-missing", LifecycleHookName=hook, InstanceId=instance_id,
        LifecycleActionResult="CONTINUE"))
    expect_error("ValidationError", lambda: asg.complete_lifecycle_action(
        **common, InstanceId=instance_id, LifecycleActionResult="MAYBE"))
    expect_error("ValidationError", lambda: asg.complete_lifecycle_action(**common, LifecycleActionResult="CONTINUE"))
    say("ok: unknown hook, unknown group, bad result and missing instance/token rejected with ValidationError")

    expected = [
        ("RecordLifecycleActionHeartbeat", None, token, None),
        ("CompleteLifecycleAction", instance_id, token, "CONTINUE"),
        ("CompleteLifecycleAction", instance_id, token2, "ABANDON"),
        ("CompleteLifecycleAction", None, token3, "CONTINUE"),
    ]

    def as_tuples(records: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        for record in records:
            for field in ("region", "group", "hook", "timestamp", "account_id"):
                expect(record.get(field), f"record without {field}: {record}")
            expect(record["region"] == REGION and record["hook"] == hook, f"record {record}")
        return [(r["action"], r["instance_id"], r["token"], r["result"]) for r in records]

    recorded = http_json(endpoint, f"/_ninelives/lifecycle-actions?group={group}")
    expect(as_tuples(recorded) == expected, f"HTTP route has {recorded}")
    say("ok: GET /_ninelives/lifecycle-actions has the 4 accepted calls, and only those")
    log_path = os.environ.get("NINELIVES_EMULATOR_LOG") or info.get("lifecycle_log")
    if log_path:
        with open(log_path, encoding="utf-8") as lines:
            in_file = [json.loads(line) for line in lines if line.strip()]
        expect(as_tuples([r for r in in_file if r.get("group") == group]) == expected, f"{log_path} has {in_file}")
        say(f"ok: {log_path} has the 4 accepted calls")
    else:
        say("note: the server keeps no lifecycle log file (NINELIVES_EMULATOR_LOG unset)")
    deleted = http_json(endpoint, f"/_ninelives/lifecycle-actions?group={group}", method="DELETE")
    expect(deleted == {"deleted": 4}, f"DELETE answered {deleted}")
    expect(http_json(endpoint, f"/_ninelives/lifecycle-actions?group={group}") == [], "records remain after DELETE")
    if log_path:
        with open(log_path, encoding="utf-8") as lines:
            expect(all(json.loads(l).get("group") != group for l in lines if l.strip()), "file keeps deleted records")
    say("ok: DELETE /_ninelives/lifecycle-actions?group=... removes them")
    asg.complete_lifecycle_action(**common, LifecycleActionToken=token, LifecycleActionResult="CONTINUE")
    deleted = http_json(endpoint, f"/_ninelives/lifecycle-actions?group={group}", method="DELETE")
    expect(deleted == {"deleted": 1}, f"second DELETE answered {deleted}")
    say("ok: after DELETE the completed token can be completed again (completions were forgotten)")

    # f. CreateVolume ClientToken
    client_token = f"ninelives-selftest-{RUN}"
    created: list[str] = []

    def delete_created() -> None:
        for volume_id in created:
            try:
                ec2.delete_volume(VolumeId=volume_id)
            except botocore.exceptions.ClientError:
                pass

    cleanup.append(delete_created)
    f_tag = {"Key": f"{TAG_KEY}-f", "Value": RUN}
    f_filter = [{"Name": f"tag:{f_tag['Key']}", "Values": [RUN]}]
    request = {"Size": 1, "AvailabilityZone": zone, "VolumeType": "gp3",
               "TagSpecifications": [{"ResourceType": "volume", "Tags": [f_tag]}]}
    first = ec2.create_volume(**request, ClientToken=client_token)
    created.append(first["VolumeId"])
    repeat = ec2.create_volume(**request, ClientToken=client_token)
    fields = ("VolumeId", "State", "AvailabilityZone", "Size", "VolumeType", "Tags")
    expect({k: repeat.get(k) for k in fields} == {k: first.get(k) for k in fields},
           f"repeat answered {repeat}, first {first}")
    expect(f_tag in repeat.get("Tags", []), f"repeat answer without the volume's tags: {repeat}")
    count = len(ec2.describe_volumes(Filters=f_filter)["Volumes"])
    expect(count == 1, f"two CreateVolume with one ClientToken made {count} volumes")
    say("ok: CreateVolume repeated with its ClientToken returns the same volume (id, state, AZ, size, tags)")
    for changed in ({"Size": 2}, {"AvailabilityZone": f"{REGION}b"}, {"VolumeType": "gp2"},
                    {"SnapshotId": snapshots[-1]}):
        expect_error("IdempotentParameterMismatch",
                     lambda: ec2.create_volume(**dict(request, **changed), ClientToken=client_token))
    count = len(ec2.describe_volumes(Filters=f_filter)["Volumes"])
    expect(count == 1, f"mismatching repeats made volumes: {count}")
    say("ok: same ClientToken with another Size, AvailabilityZone, VolumeType or SnapshotId: "
        "IdempotentParameterMismatch (HTTP 400)")
    ec2.delete_volume(VolumeId=first["VolumeId"])
    renewed = ec2.create_volume(**request, ClientToken=client_token)["VolumeId"]
    created.append(renewed)
    expect(renewed != first["VolumeId"], "after deleting its volume the ClientToken still answered the deleted one")
    say("ok: after the volume is deleted, the ClientToken creates a new one")
    raced_token = f"{client_token}-race"
    outcomes = concurrently([lambda: ec2.create_volume(**request, ClientToken=raced_token)] * 8)
    errors = [o for o in outcomes if isinstance(o, botocore.exceptions.ClientError)]
    expect(not errors, f"concurrent CreateVolume failed: {errors}")
    raced_ids = {o["VolumeId"] for o in outcomes}
    created.extend(raced_ids)
    count = len(ec2.describe_volumes(Filters=f_filter)["Volumes"])
    expect(len(raced_ids) == 1 and count == 2,
           f"8 concurrent CreateVolume with one token: ids {raced_ids}, {count - 1} made")
    say("ok: 8 concurrent CreateVolume with one ClientToken create one volume")

    # g. AttachVolume checks
    host = ec2.run_instances(ImageId=images[-1], MinCount=1, MaxCount=1, InstanceType="t3.micro",
                             Placement={"AvailabilityZone": zone},
                             TagSpecifications=tag_spec("instance"))["Instances"][0]["InstanceId"]
    g_volumes: list[str] = []

    def delete_g_volumes() -> None:
        for volume_id in g_volumes:
            try:
                ec2.delete_volume(VolumeId=volume_id)
            except botocore.exceptions.ClientError:
                pass

    def new_volume(az: str) -> str:
        volume_id = ec2.create_volume(Size=1, AvailabilityZone=az, TagSpecifications=tag_spec("volume"))["VolumeId"]
        g_volumes.append(volume_id)
        return volume_id

    cleanup.append(delete_g_volumes)  # runs after the instance is gone (cleanup runs in reverse)
    cleanup.append(lambda: ec2.terminate_instances(InstanceIds=[host]))
    attached, spare, raced = new_volume(zone), new_volume(zone), new_volume(zone)
    elsewhere = new_volume(f"{REGION}b")
    ec2.attach_volume(VolumeId=attached, InstanceId=host, Device="/dev/sdf")
    shown = ec2.describe_volumes(VolumeIds=[attached])["Volumes"][0]
    expect(shown["State"] == "in-use" and [a["InstanceId"] for a in shown["Attachments"]] == [host],
           f"attached volume shows {shown}")
    say("ok: AttachVolume of an available volume in the instance's AZ at a free device accepted")
    expect_message(expect_error("VolumeInUse", lambda: ec2.attach_volume(
        VolumeId=attached, InstanceId=host, Device="/dev/sdg")), f"{attached} is already attached to an instance")
    say("ok: attaching an attached volume: VolumeInUse")
    for taken in ("/dev/sdf", "/dev/xvda"):
        expect_message(expect_error("InvalidParameterValue", lambda: ec2.attach_volume(
            VolumeId=spare, InstanceId=host, Device=taken)),
            f"Invalid value '{taken}' for unixDevice. Attachment point {taken} is already in use")
    say("ok: a device in use (an attached volume's, the root device): InvalidParameterValue")
    expect_message(expect_error("InvalidVolume.ZoneMismatch", lambda: ec2.attach_volume(
        VolumeId=elsewhere, InstanceId=host, Device="/dev/sdh")),
        f"The volume '{elsewhere}' is not in the same availability zone as instance '{host}'")
    say("ok: a volume in another AZ: InvalidVolume.ZoneMismatch")
    expect_message(expect_error("IncorrectState", lambda: ec2.attach_volume(
        VolumeId=spare, InstanceId=dead, Device="/dev/sdh")), f"Instance '{dead}' is not 'running'.")
    say("ok: a terminated instance: IncorrectState")
    expect_error("InvalidVolume.NotFound", lambda: ec2.attach_volume(
        VolumeId="vol-0123456789abcdef0", InstanceId=host, Device="/dev/sdh"))
    expect_error("InvalidInstanceID.NotFound", lambda: ec2.attach_volume(
        VolumeId=spare, InstanceId=unknown_instance, Device="/dev/sdh"))
    say("ok: an unknown volume or instance: moto's InvalidVolume.NotFound / InvalidInstanceID.NotFound")
    ec2.stop_instances(InstanceIds=[host])
    ec2.attach_volume(VolumeId=spare, InstanceId=host, Device="/dev/sdh")
    say("ok: AttachVolume to a stopped instance accepted")

    def attach_raced(device: str) -> Callable[[], Any]:
        return lambda: ec2.attach_volume(VolumeId=raced, InstanceId=host, Device=device)

    outcomes = concurrently([attach_raced(f"/dev/sd{letter}") for letter in "ijklmnop"])
    succeeded = [o for o in outcomes if not isinstance(o, botocore.exceptions.ClientError)]
    codes = [o.response["Error"].get("Code") for o in outcomes if isinstance(o, botocore.exceptions.ClientError)]
    expect(len(succeeded) == 1 and codes == ["VolumeInUse"] * 7,
           f"8 concurrent AttachVolume of one volume: {len(succeeded)} succeeded, errors {codes}")
    mapped = [m["DeviceName"] for m in ec2.describe_instances(InstanceIds=[host])["Reservations"][0]["Instances"][0]
              ["BlockDeviceMappings"] if m["Ebs"]["VolumeId"] == raced]
    expect(len(mapped) == 1, f"the raced volume is mapped at {mapped}")
    say("ok: 8 concurrent AttachVolume of one volume: exactly 1 succeeds, 7 VolumeInUse")

    # h. Route 53 paging within a weighted set
    zone_id = route53.create_hosted_zone(Name=f"selftest-{RUN}.example.com", CallerReference=f"selftest-{RUN}")[
        "HostedZone"]["Id"]
    name = f"wrr.selftest-{RUN}.example.com."
    members = [f"i-{n:017x}" for n in range(7)]
    route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [
        {"Action": "CREATE", "ResourceRecordSet": {
            "Name": name, "Type": "CNAME", "SetIdentifier": member, "Weight": 100, "TTL": 60,
            "ResourceRecords": [{"Value": f"{member}.internal"}]}} for member in reversed(members)]})

    def delete_zone() -> None:
        route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [
            {"Action": "DELETE", "ResourceRecordSet": {
                "Name": name, "Type": "CNAME", "SetIdentifier": member, "Weight": 100, "TTL": 60,
                "ResourceRecords": [{"Value": f"{member}.internal"}]}} for member in members]})
        route53.delete_hosted_zone(Id=zone_id)

    cleanup.append(delete_zone)
    seen: list[str] = []
    request: dict[str, Any] = {"HostedZoneId": zone_id, "StartRecordName": name, "StartRecordType": "CNAME",
                               "MaxItems": "3"}
    for _ in range(10):
        page = route53.list_resource_record_sets(**request)
        seen += [r["SetIdentifier"] for r in page["ResourceRecordSets"] if r["Name"] == name]
        if not page["IsTruncated"]:
            break
        expect(page.get("NextRecordIdentifier") is not None, f"a page inside the set has no NextRecordIdentifier: {page}")
        request.update(StartRecordName=page["NextRecordName"], StartRecordType=page["NextRecordType"],
                       StartRecordIdentifier=page["NextRecordIdentifier"])
    expect(seen == members, f"paging by 3 through a weighted set of 7 gave {seen}")
    say("ok: ListResourceRecordSets pages through a weighted set by set identifier (Next/StartRecordIdentifier)")

    # i. Route 53 change batches: checked against the zone, all or nothing, one at a time
    domain = f"batch-{RUN}.example.com"
    zone_i = route53.create_hosted_zone(Name=domain, CallerReference=f"selftest-i-{RUN}")["HostedZone"]["Id"]

    def a_record(label: str, values: list[str], ttl: int = 60, **extra: Any) -> dict[str, Any]:
        return dict({"Name": f"{label}.{domain}.", "Type": "A", "TTL": ttl,
                     "ResourceRecords": [{"Value": v} for v in values]}, **extra)

    def batch(*changes: tuple[str, dict[str, Any]]) -> Any:
        return route53.change_resource_record_sets(HostedZoneId=zone_i, ChangeBatch={"Changes": [
            {"Action": action, "ResourceRecordSet": record_set} for action, record_set in changes]})

    def zone_records() -> list[tuple[Any, ...]]:
        found = route53.list_resource_record_sets(HostedZoneId=zone_i)["ResourceRecordSets"]
        return sorted((r["Name"], r["Type"], r.get("SetIdentifier"), r.get("TTL"), r.get("Weight"),
                       tuple(sorted(v["Value"] for v in r.get("ResourceRecords", []))),
                       (r.get("AliasTarget") or {}).get("DNSName"))
                      for r in found if r["Type"] not in ("SOA", "NS"))

    def delete_zone_i() -> None:
        left = [r for r in route53.list_resource_record_sets(HostedZoneId=zone_i)["ResourceRecordSets"]
                if r["Type"] not in ("SOA", "NS")]
        if left:
            batch(*[("DELETE", r) for r in left])
        route53.delete_hosted_zone(Id=zone_i)

    cleanup.append(delete_zone_i)

    def rejected(message: str, *changes: tuple[str, dict[str, Any]]) -> None:
        before = zone_records()
        expect_message(expect_error("InvalidChangeBatch", lambda: batch(*changes)), f"[{message}]")
        expect(zone_records() == before, f"a rejected batch changed the zone: {before} -> {zone_records()}")

    kate = f"kate.{domain}."
    batch(("CREATE", a_record("kate", ["192.0.2.1"])))
    rejected(f"Tried to create resource record set [name='{kate}', type='A'] but it already exists",
             ("CREATE", a_record("kate", ["192.0.2.2"])))
    rejected(f"Tried to create resource record set [name='{kate}', type='A'] but it already exists",
             ("CREATE", a_record("KATE", ["192.0.2.1"]) | {"Name": f"KATE.{domain}"}))
    say("ok: CREATE of an existing record (other or same values, other case): InvalidChangeBatch, nothing changed")
    mismatch = f"Tried to delete resource record set [name='{kate}', type='A'] but the values provided do not match the current values"
    rejected(mismatch, ("DELETE", a_record("kate", ["192.0.2.1"], ttl=300)))
    rejected(mismatch, ("DELETE", a_record("kate", ["192.0.2.9"])))
    rejected(mismatch, ("DELETE", a_record("kate", ["192.0.2.1", "192.0.2.9"])))
    batch(("CREATE", a_record("w", ["192.0.2.10"], SetIdentifier="blue", Weight=10)),
          ("CREATE", a_record("w2", ["192.0.2.10"], SetIdentifier="blue", Weight=10)))
    rejected(f"Tried to delete resource record set [name='w.{domain}.', type='A', set-identifier='blue'] "
             "but the values provided do not match the current values",
             ("DELETE", a_record("w", ["192.0.2.10"], SetIdentifier="blue", Weight=20)))
    say("ok: DELETE with another TTL, value, value set or weight: InvalidChangeBatch (values do not match), nothing changed")
    rejected(f"Tried to delete resource record set [name='gone.{domain}.', type='A'] but it was not found",
             ("DELETE", a_record("gone", ["192.0.2.1"])))
    rejected(f"Tried to delete resource record set [name='w.{domain}.', type='A', set-identifier='green'] "
             "but it was not found", ("DELETE", a_record("w", ["192.0.2.10"], SetIdentifier="green", Weight=10)))
    rejected(f"Tried to delete resource record set [name='w.{domain}.', type='A'] but it was not found",
             ("DELETE", a_record("w", ["192.0.2.10"])))
    say("ok: DELETE of a missing record (name, set identifier): InvalidChangeBatch (not found), not InvalidInput")
    batch(("DELETE", a_record("w", ["192.0.2.10"], SetIdentifier="blue", Weight=10)))
    expect([r[0] for r in zone_records() if r[2] == "blue"] == [f"w2.{domain}."],
           f"DELETE of w/blue left {zone_records()}")
    say("ok: DELETE removes only its (name, type, set identifier), not every record with that identifier")
    batch(("CREATE", a_record("multi", ["192.0.2.1", "192.0.2.2"])))
    batch(("DELETE", a_record("MULTI", ["192.0.2.2", "192.0.2.1"]) | {"Name": f"Multi.{domain}"}))
    expect(all(r[0] != f"multi.{domain}." for r in zone_records()), "DELETE by another case/value order failed")
    batch(("CREATE", {"Name": f"alias.{domain}.", "Type": "A",
                      "AliasTarget": {"HostedZoneId": zone_i.split("/")[-1], "DNSName": kate,
                                      "EvaluateTargetHealth": False}}))
    rejected(f"Tried to delete resource record set [name='alias.{domain}.', type='A'] "
             "but the values provided do not match the current values",
             ("DELETE", {"Name": f"alias.{domain}.", "Type": "A", "AliasTarget": {
                 "HostedZoneId": zone_i.split("/")[-1], "DNSName": f"other.{domain}.", "EvaluateTargetHealth": False}}))
    batch(("DELETE", {"Name": f"alias.{domain}.", "Type": "A", "AliasTarget": {
        "HostedZoneId": zone_i.split("/")[-1], "DNSName": kate.upper().rstrip("."), "EvaluateTargetHealth": False}}))
    say("ok: DELETE matches names case-insensitively, values in any order, alias targets by DNSName/HostedZoneId")
    for old, new in (("192.0.2.1", "192.0.2.2"), ("192.0.2.2", "192.0.2.1"), ("192.0.2.1", "192.0.2.2")):
        batch(("DELETE", a_record("kate", [old])), ("CREATE", a_record("kate", [new])))
        expect([r[5] for r in zone_records() if r[0] == kate] == [(new,)], f"swap {old}->{new}: {zone_records()}")
    say("ok: DELETE old + CREATE new of one record in one batch swaps it (back and forth, no journal ghosts)")
    rejected(f"Tried to delete resource record set [name='gone.{domain}.', type='A'] but it was not found",
             ("CREATE", a_record("fresh", ["192.0.2.3"])), ("DELETE", a_record("gone", ["192.0.2.1"])))
    rejected(f"Tried to create resource record set [name='{kate}', type='A'] but it already exists",
             ("UPSERT", a_record("up", ["192.0.2.4"])), ("DELETE", a_record("kate", ["192.0.2.2"])),
             ("CREATE", a_record("kate", ["192.0.2.5"])), ("CREATE", a_record("kate", ["192.0.2.6"])))
    two = (f"Tried to delete resource record set [name='gone.{domain}.', type='A'] but it was not found, "
           f"Tried to create resource record set [name='{kate}', type='A'] but it already exists")
    rejected(two, ("DELETE", a_record("gone", ["192.0.2.1"])), ("CREATE", a_record("kate", ["192.0.2.7"])))
    say("ok: a batch with a failing change applies none of its changes (CREATE, UPSERT, DELETE before it); "
        "all errors in one message")
    current = "192.0.2.2"
    for round_ in range(20):
        mine = [f"198.51.100.{round_}", f"203.0.113.{round_}"]
        outcomes = concurrently([
            lambda value=value: batch(("DELETE", a_record("kate", [current])), ("CREATE", a_record("kate", [value])))
            for value in mine])
        won = [mine[i] for i, o in enumerate(outcomes) if not isinstance(o, botocore.exceptions.ClientError)]
        errors = [o.response["Error"] for o in outcomes if isinstance(o, botocore.exceptions.ClientError)]
        expect(len(won) == 1 and [e.get("Code") for e in errors] == ["InvalidChangeBatch"],
               f"round {round_}: two concurrent swaps: {len(won)} succeeded, errors {errors}")
        expect("do not match the current values" in errors[0].get("Message", ""), f"loser's error {errors}")
        now = [r[5] for r in zone_records() if r[0] == kate]
        expect(now == [(won[0],)], f"round {round_}: after the swaps {kate} is {now}, winner {won}")
        current = won[0]
    say("ok: 20 rounds of two concurrent DELETE+CREATE swaps of one record: exactly 1 succeeds each, "
        "the other InvalidChangeBatch, the record holds the winner's value")

    # j. FIFO redelivery order
    sqs = boto3.session.Session(
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        region_name=REGION,
    ).client("sqs", endpoint_url=endpoint)
    url = sqs.create_queue(QueueName=f"selftest-{RUN}.fifo",
                           Attributes={"FifoQueue": "true", "VisibilityTimeout": "0"})["QueueUrl"]
    cleanup.append(lambda: sqs.delete_queue(QueueUrl=url))
    for body in ("first", "second", "third"):
        sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId="g", MessageDeduplicationId=body)
    for round_ in range(3):
        got = [m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])]
        expect(got[:1] == ["first"], f"round {round_}: a failed group head must come back first, got {got}")
    say("ok: SQS FIFO: a message handed back (visibility timeout out) is delivered again before later ones of its group")


if __name__ == "__main__":
    sys.exit(main())
