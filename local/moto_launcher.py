#!/usr/bin/env python3
"""Local AWS for ninelives: moto's server plus ten small emulator extensions.

Written against moto 5.2.5 (the pin in local/requirements.txt). Each extension
below is one function that says which real-AWS behaviour it supplies and why we
need it. They patch moto internals, so the launcher checks on start that every
attribute it patches still exists: if the installed moto is not 5.2.5 it warns,
and if a patched attribute is missing it refuses to start (exit 3) with a list
of what is missing instead of serving a half-patched emulator.

Extensions
----------
a. no_default_amis: MOTO_EC2_LOAD_DEFAULT_AMIS=false. Moto otherwise loads
   ~1,300 Amazon AMIs per region, each with a snapshot, and they all show up
   in DescribeSnapshots (moto ignores OwnerIds). A real account starts empty.
b. index_tag_lookup: moto looks up one resource's EC2 tags by scanning every
   tag of every resource in the region, so DescribeSnapshots (which fetches
   the tags of each snapshot it returns or filters) is quadratic. The patch
   reads the resource's own tags straight from moto's tag store by resource
   id. Same results, linear time; see local/README.md for measurements.
c. page_describe_calls: DescribeSnapshots, DescribeVolumes and DescribeImages
   ignore MaxResults/NextToken in moto (one page with everything), and
   DescribeInstances pages 100 reservations by default, accepts any
   MaxResults, and fails with HTTP 500 on an unknown token. All four now page
   like EC2: without MaxResults (and NextToken) everything comes back in one
   page; MaxResults must be 5..1000 (else InvalidParameterValue) and cannot be
   combined with an explicit id list (InvalidParameterCombination); pages are
   ordered by resource id and a NextToken continues after the last id of the
   previous page, so paging is deterministic and resources deleted between
   pages do not make later pages skip anything. A token that we did not issue
   for that operation gives InvalidPaginationToken.
d. ami_snapshots_in_use: real EC2 refuses DeleteSnapshot of a snapshot that a
   registered AMI references (InvalidSnapshot.InUse, HTTP 400). Moto does this
   only for the snapshot it creates itself for CreateImage; its RegisterImage
   ignores BlockDeviceMappings altogether (and invents a fresh snapshot that it
   reports instead). The patch makes RegisterImage keep the block device
   mappings it was given (DescribeImages reports them, no invented snapshot,
   an unknown snapshot id gives InvalidSnapshot.NotFound) and makes
   DeleteSnapshot refuse any snapshot that an AMI's block device mappings
   reference, until that AMI is deregistered. RegisterImage also keeps
   RootDeviceName, Architecture and VirtualizationType, and instances launched
   from such an AMI get moto's default root volume at that root device name
   (root_volume_at_root_device), not always at /dev/sda1.
e. lifecycle_actions: Auto Scaling CompleteLifecycleAction and
   RecordLifecycleActionHeartbeat are not implemented by moto (HTTP 500).
   They are added to moto's Auto Scaling responses: they validate the group
   and the lifecycle hook, require LifecycleActionToken or InstanceId (AWS
   accepts either or both), require LifecycleActionResult CONTINUE or ABANDON
   for Complete, answer with the empty AWS Query response, and record every
   accepted call so that tests can assert it (see below). Moto never starts a
   lifecycle action, so there is no pending action to match; but, as in AWS,
   an action can be completed only once: Complete and Heartbeat fail with
   ValidationError "No active Lifecycle Action found with token T" when an
   accepted CompleteLifecycleAction record of the same region, account, group
   and hook has the call's token, or, when the call gives only an InstanceId,
   "... found with instance ID I" when such a record has that instance id. An
   InstanceId must also be an instance that moto's EC2 (same account and
   region) knows and that is not terminated, else the same instance ID error.
   "Completed" is read from the recorded calls, so DELETE
   /_ninelives/lifecycle-actions forgets completions too; the check and the
   recording are one step under the log's lock (two concurrent Completes of
   one token: exactly one is accepted).
f. create_volume_client_token: EC2 CreateVolume is idempotent with a
   ClientToken: a repeat with the same token (same account and region)
   returns the volume that the first call created, and a repeat that asks for
   a different Size, AvailabilityZone, SnapshotId or VolumeType fails with
   IdempotentParameterMismatch (HTTP 400). Moto 5.2.5 ignores ClientToken and
   creates a volume per call. The patch keeps token -> (volume id, those four
   parameters as requested) on moto's EC2 backend and answers a repeat with
   the normal CreateVolume response of that volume; if the volume has been
   deleted since, the call creates a new one (and the token then names it).
   Look-up and create are one step under a lock: concurrent calls with one
   token create one volume. Other parameters (Iops, Encrypted, ...) are not
   compared.
g. attach_volume_checks: moto's AttachVolume attaches any volume to any
   instance at any device, even a volume that is attached already. EC2
   refuses, checked here in this order after moto's own InvalidVolume.NotFound
   and InvalidInstanceID.NotFound: a volume that is not "available"
   (VolumeInUse, "vol-… is already attached to an instance"); an instance that
   is neither running nor stopped (IncorrectState, "Instance 'i-…' is not
   'running'."); a volume in another AZ than the instance
   (InvalidVolume.ZoneMismatch, "The volume 'vol-…' is not in the same
   availability zone as instance 'i-…'"); a device that is in the instance's
   block device mapping, root device included (InvalidParameterValue,
   "Invalid value '/dev/sdf' for unixDevice. Attachment point /dev/sdf is
   already in use"). All HTTP 400. Checks and attach are one step under a
   lock: of two concurrent AttachVolume calls for one volume exactly one
   succeeds. Multi-Attach (one io1/io2 volume on several instances) is not
   emulated.
h. record_set_identifier_paging: Route 53 pages ListResourceRecordSets within
   a weighted (or latency, failover, ...) set by set identifier: a page that
   ends inside a set answers NextRecordIdentifier, and StartRecordIdentifier
   resumes there. Moto 5.2.5 ignores StartRecordIdentifier and never answers
   NextRecordIdentifier, so a set larger than a page comes back as the same
   page forever. The patch orders records by (name, type, set identifier),
   honours StartRecordIdentifier and answers NextRecordIdentifier.
i. atomic_change_batches: Route 53 checks every change of a
   ChangeResourceRecordSets batch against the zone as it is, with the earlier
   changes of the batch applied, and makes all of the batch or none of it.
   Moto checked CREATE and DELETE against a journal of past changes instead
   (duplicate CREATEs with other values accepted, DELETEs with stale values
   or of deleted records accepted, a CREATE identical to an earlier one
   refused after that record was deleted), deleted every record with a
   DELETE's set identifier whatever its name, and could leave a failed
   batch half applied. Now: CREATE of an existing (name, type, set
   identifier) and DELETE of a missing one or with other values fail with
   InvalidChangeBatch (HTTP 400), message "[Tried to create resource record
   set [name='n.', type='A'] but it already exists, ...]" as Route 53 words
   it ("... but it was not found", "... but the values provided do not match
   the current values"; set-identifier='…' in the brackets when given). A
   DELETE matches name (case-insensitive, trailing dot ignored), type, set
   identifier, TTL, the values in any order (exact strings, TXT quotes
   included), Weight, and an alias target's DNSName and HostedZoneId; it
   removes that one record. UPSERT is moto's. Batches run one at a time
   under a lock and replace the zone's records in one step, so of two
   concurrent DELETE(X)+CREATE(Y) swaps of one record exactly one succeeds.
j. fifo_redelivery_order: SQS FIFO hands back a message group in order: a
   message whose visibility timeout ran out (a consumer failed it) is
   delivered again before the later messages of its group. Moto 5.2.5 keeps
   such messages in its "in flight" set until its receive loop reaches
   each one, and counts a group as busy while any of them is there: the
   first message of the group was skipped (its group still looked busy
   because of the later ones) and a later message was delivered first. The
   patch drops messages that are visible again from the in-flight set before
   moto's ReceiveMessage runs, so a group is busy only while a message of it
   is really invisible. replset-tasks relies on that order (a later task of
   a set is never applied before an earlier failed one).

Recorded lifecycle calls
------------------------
Each accepted call is one record {"action", "region", "account_id", "group",
"hook", "instance_id", "token", "result" (null for heartbeats), "timestamp"}:
- appended as one JSON line to the file named by NINELIVES_EMULATOR_LOG
  (scripts/local-aws.sh passes .local-aws/lifecycle-actions.jsonl; unset or
  empty: memory only); the launcher empties the file when it starts, as
  moto's state starts empty too;
- served at GET /_ninelives/lifecycle-actions as a JSON array (optional query
  parameters region=, group=, action= narrow it); DELETE on the same path
  removes the matching records (all of them without parameters) from memory
  and from the file and answers {"deleted": n}.
GET /_ninelives/info answers {"launcher": "ninelives-local-aws", "pid", "moto",
"extensions"}; scripts/local-aws.sh uses it to tell our server from anything
else listening on the port.

Counted calls and added latency (--bench, for the benchmarks)
-------------------------------------------------------------
With --bench every AWS request is counted by "service:Action" before
moto sees it: the service from the SigV4 credential scope of the
Authorization header ("-" when unsigned), the action from X-Amz-Target (JSON
protocols), the form body's Action (Query protocols: EC2, Auto Scaling, SNS,
CloudWatch) or, for Route 53's REST API, the method and path mapped to the
operation name. GET /_ninelives/calls answers {"counts": {"ec2:DeleteSnapshot":
n, ...}, "total": n}, and with ?times=1 also "times": {key: [seconds since the
counter was last reset, ...]}; DELETE /_ninelives/calls resets the counter.
PUT /_ninelives/latency?ms=N makes every AWS request wait N milliseconds
(0 to 10000) before moto handles it, without holding Python's lock, so
concurrent requests wait side by side as they would on the way to a real
regional endpoint; ms=0 (the default) turns it off. Without the flag nothing
is read, counted or delayed and both routes are 404.

Usage: moto_launcher.py [--host 127.0.0.1] [--port 5000] [--without-tag-index]
                        [--bench]
(--without-tag-index leaves extension b out; it exists only to measure it).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime
import functools
import importlib
import importlib.metadata
import io
import json
import os
import re
import signal
import sys
import threading
import time
from typing import Any, Callable
from urllib.parse import parse_qs

PINNED_MOTO_VERSION = "5.2.5"
LAUNCHER_NAME = "ninelives-local-aws"
ROUTE_PREFIX = "/_ninelives/"
LIFECYCLE_ROUTE = "/_ninelives/lifecycle-actions"
INFO_ROUTE = "/_ninelives/info"
CALLS_ROUTE = "/_ninelives/calls"
LATENCY_ROUTE = "/_ninelives/latency"

# Every moto attribute a patch below reads or replaces, as "module:attr.path".
PATCH_TARGETS = [
    "moto.sqs.models:SQSBackend.receive_message",
    "moto.sqs.models:SQSBackend.get_queue",
    "moto.sqs.models:Queue.pending_messages",
    "moto.settings:ec2_load_default_amis",
    "moto.ec2.models.core:TaggedEC2Resource.get_tags",
    "moto.ec2.models.tags:TagBackend.describe_tags",
    "moto.ec2.utils:EC2_PREFIX_TO_RESOURCE",
    "moto.ec2.utils:get_prefix",
    "moto.ec2.responses:EC2Response.describe_snapshots",
    "moto.ec2.responses:EC2Response.describe_volumes",
    "moto.ec2.responses:EC2Response.describe_images",
    "moto.ec2.responses:EC2Response.describe_instances",
    "moto.ec2.responses:EC2Response.register_image",
    "moto.ec2.responses:EC2Response._get_param",
    "moto.ec2.responses:EC2Response._filters_from_querystring",
    "moto.ec2.models:EC2Backend.get_reservations_by_instance_ids",
    "moto.ec2.models:EC2Backend.describe_instances",
    "moto.ec2.models.elastic_block_store:EBSBackend.delete_snapshot",
    "moto.ec2.models.elastic_block_store:EBSBackend.get_snapshot",
    "moto.ec2.models.amis:Ami.block_device_mappings",
    "moto.ec2.models.instances:Instance.setup_defaults",
    "moto.ec2.exceptions:EC2ClientError",
    "moto.ec2.exceptions:InvalidSnapshotInUse",
    "moto.ec2.exceptions:InvalidInstanceIdError",
    "moto.ec2.exceptions:InvalidVolumeIdError",
    "moto.ec2.models:ec2_backends",
    "moto.ec2.models.instances:InstanceBackend.get_instance",
    "moto.ec2.models.instances:Instance.state",
    "moto.ec2.models.instances:Instance.availability_zone",
    "moto.ec2.models.instances:Instance.get_block_device_mapping",
    "moto.ec2.models.elastic_block_store:EBSBackend.get_volume",
    "moto.ec2.models.elastic_block_store:Volume.status",
    "moto.ec2.models.elastic_block_store:Volume.availability_zone",
    "moto.ec2.responses:EC2Response.create_volume",
    "moto.ec2.responses:EC2Response.attach_volume",
    "moto.ec2.responses:EC2Response.ec2_backend",
    "moto.ec2.responses:EC2Response.error_on_dryrun",
    "moto.route53.responses:Route53.list_resource_record_sets",
    "moto.route53.responses:Route53.backend",
    "moto.route53.models:reverse_domain_name",
    "moto.route53.models:FakeZone.get_record_sets",
    "moto.route53.utils:validate_domain_name",
    "moto.route53.exceptions:InvalidInput",
    "moto.route53.models:Route53Backend.change_resource_record_sets",
    "moto.route53.models:Route53Backend.get_hosted_zone",
    "moto.route53.models:FakeZone.add_rrset",
    "moto.route53.models:FakeZone.upsert_rrset",
    "moto.route53.exceptions:Route53ClientError",
    "moto.route53.exceptions:DnsNameInvalidForZone",
    "moto.route53.exceptions:InvalidActionValue",
    "moto.autoscaling.responses:AutoScalingResponse.autoscaling_backend",
    "moto.autoscaling.exceptions:ValidationError",
    "moto.core.responses:ActionResult",
    "moto.core.responses:EmptyResult",
    "moto.moto_server.werkzeug_app:DomainDispatcherApplication",
    "moto.moto_server.werkzeug_app:create_backend_app",
    "moto.moto_server.werkzeug_app:MotoRequestHandler",
]


def log(message: str) -> None:
    print(f"moto_launcher: {message}", file=sys.stderr, flush=True)


def _resolve(target: str) -> Any:
    module_name, _, path = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def check_moto_version() -> str:
    """Refuse to run against a moto whose internals the patches no longer fit."""
    installed = importlib.metadata.version("moto")
    missing = []
    for target in PATCH_TARGETS:
        try:
            _resolve(target)
        except (ImportError, AttributeError) as exc:
            missing.append(f"{target} ({exc})")
    if missing:
        log(
            f"moto {installed} is installed, the launcher was written for "
            f"{PINNED_MOTO_VERSION}; these patched attributes are missing:\n  "
            + "\n  ".join(missing)
            + "\nReinstall the pinned requirements (local/requirements.txt) or "
            "update local/moto_launcher.py for this moto."
        )
        sys.exit(3)
    if installed != PINNED_MOTO_VERSION:
        log(
            f"warning: moto {installed} is installed, the launcher was written for "
            f"{PINNED_MOTO_VERSION}; all patched attributes exist, but re-run "
            "scripts/local-aws.sh selftest"
        )
    return installed


# --- a. no default AMIs --------------------------------------------------------


def no_default_amis() -> None:
    """A real account has no AMIs and no AMI snapshots of its own.

    Moto loads ~1,300 public Amazon AMIs (each with a snapshot) into every
    region unless MOTO_EC2_LOAD_DEFAULT_AMIS is "false"; since moto ignores
    OwnerIds, those snapshots would be in every DescribeSnapshots answer. Moto
    reads the variable when a region's EC2 backend is first created, so this
    must run before the first request (it runs before moto is imported).
    """
    os.environ["MOTO_EC2_LOAD_DEFAULT_AMIS"] = "false"


# --- b. tag lookup by resource id --------------------------------------------


def index_tag_lookup() -> None:
    """EC2 answers tag lookups per resource; moto scanned every tag.

    TaggedEC2Resource.get_tags called describe_tags(resource-id filter), which
    walks all tags of all resources in the region and matches each resource id
    with a regular expression. Every snapshot that DescribeSnapshots filters by
    tag or returns costs one such walk, so 10,000 tagged snapshots took
    minutes. moto keeps tags as {resource_id: {key: value}} in the backend, so
    we read the resource's entry directly, in the same result shape.
    """
    from moto.ec2.models.core import TaggedEC2Resource
    from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix

    scan_all_tags = TaggedEC2Resource.get_tags

    def get_tags(self: Any) -> list[dict[str, str]]:
        resource_id = getattr(self, "id", None)
        if not resource_id:
            return []
        store = getattr(self.ec2_backend, "tags", None)
        if not isinstance(store, dict):  # not moto's TagBackend: old behaviour
            return scan_all_tags(self)
        tags = store.get(resource_id)  # .get: do not grow the defaultdict
        if not tags:
            return []
        resource_type = EC2_PREFIX_TO_RESOURCE.get(get_prefix(resource_id), "")
        return [
            {
                "resource_id": resource_id,
                "key": key,
                "value": value,
                "resource_type": resource_type,
            }
            for key, value in list(tags.items())
        ]

    TaggedEC2Resource.get_tags = get_tags


# --- c. EC2-style paging of Describe* ----------------------------------------

MIN_PAGE_SIZE = 5
MAX_PAGE_SIZE = 1000


def _ec2_error(code: str, message: str) -> Exception:
    from moto.ec2.exceptions import EC2ClientError

    return EC2ClientError(code, message)


def _encode_token(operation: str, after_id: str) -> str:
    raw = json.dumps({"op": operation, "after": after_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_token(operation: str, token: str) -> str:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        if data.get("op") == operation and isinstance(data.get("after"), str):
            return data["after"]
    except (ValueError, binascii.Error, AttributeError):
        pass
    raise _ec2_error(
        "InvalidPaginationToken",
        "The specified pagination token is not valid or is expired.",
    )


def _paging_request(response: Any, operation: str, ids_param: str) -> tuple[int, str | None] | None:
    """(page size, id to continue after) for a paged request, None for "all"."""
    raw_max = response._get_param("MaxResults")
    token = response._get_param("NextToken")
    if raw_max is None and not token:
        return None
    page_size = MAX_PAGE_SIZE
    if raw_max is not None:
        try:
            page_size = int(raw_max)
        except (TypeError, ValueError):
            raise _ec2_error(
                "InvalidParameterValue",
                f"Value ( {raw_max} ) for parameter maxResults is invalid.",
            ) from None
        if not MIN_PAGE_SIZE <= page_size <= MAX_PAGE_SIZE:
            raise _ec2_error(
                "InvalidParameterValue",
                f"Value ( {page_size} ) for parameter maxResults is invalid. "
                f"Expecting a value between {MIN_PAGE_SIZE} and {MAX_PAGE_SIZE}.",
            )
        if response._get_param(ids_param, []):
            raise _ec2_error(
                "InvalidParameterCombination",
                f"The parameter {ids_param} cannot be used with the parameter maxResults",
            )
    after_id = _decode_token(operation, token) if token else None
    return page_size, after_id


def _page(items: list[Any], paging: tuple[int, str | None], operation: str) -> tuple[list[Any], str | None]:
    page_size, after_id = paging
    ordered = sorted(items, key=lambda item: item.id)
    if after_id is not None:
        ordered = [item for item in ordered if item.id > after_id]
    page = ordered[:page_size]
    token = _encode_token(operation, page[-1].id) if len(ordered) > page_size else None
    return page, token


def page_describe_calls() -> None:
    """EC2 pages Describe* when asked (MaxResults/NextToken); moto mostly did not.

    Without this the Rust paginators are never exercised locally: moto
    returned every snapshot, volume and image in one page and no NextToken.
    DescribeInstances paged by itself, but with a default page of 100 (EC2
    returns all without MaxResults), no MaxResults bounds, and a bare
    reservation id as token. See the module docstring for the rules.
    """
    from moto.core.responses import ActionResult
    from moto.ec2.responses import EC2Response

    def paged(original: Callable[[Any], Any], operation: str, list_key: str, ids_param: str) -> Callable[[Any], Any]:
        @functools.wraps(original)
        def describe(self: Any) -> Any:
            paging = _paging_request(self, operation, ids_param)
            result = original(self)
            if paging is None:
                return result
            payload = dict(result.result)
            payload[list_key], token = _page(list(payload[list_key]), paging, operation)
            if token:
                payload["NextToken"] = token
            return ActionResult(payload)

        return describe

    EC2Response.describe_snapshots = paged(
        EC2Response.describe_snapshots, "DescribeSnapshots", "Snapshots", "SnapshotIds"
    )
    EC2Response.describe_volumes = paged(
        EC2Response.describe_volumes, "DescribeVolumes", "Volumes", "VolumeIds"
    )
    EC2Response.describe_images = paged(
        EC2Response.describe_images, "DescribeImages", "Images", "ImageIds"
    )

    def describe_instances(self: Any) -> Any:
        # moto's own method pages with a default of 100; replaced, not wrapped.
        self.error_on_dryrun()
        paging = _paging_request(self, "DescribeInstances", "InstanceIds")
        filters = self._filters_from_querystring()
        instance_ids = self._get_param("InstanceIds", [])
        if instance_ids:
            reservations = self.ec2_backend.get_reservations_by_instance_ids(
                instance_ids, filters=filters
            )
        else:
            reservations = self.ec2_backend.describe_instances(filters=filters)
        if paging is None:
            return ActionResult({"Reservations": reservations})
        page, token = _page(list(reservations), paging, "DescribeInstances")
        result: dict[str, Any] = {"Reservations": page}
        if token:
            result["NextToken"] = token
        return ActionResult(result)

    EC2Response.describe_instances = describe_instances


# --- d. snapshots used by registered AMIs -----------------------------------

REGISTERED_BDMS = "_ninelives_block_device_mappings"


def _registered_mapping(mapping: dict[str, Any], ec2_backend: Any) -> dict[str, Any]:
    """A RegisterImage BlockDeviceMapping as DescribeImages reports it."""
    out: dict[str, Any] = {"DeviceName": mapping.get("DeviceName")}
    for key in ("VirtualName", "NoDevice"):
        if mapping.get(key) is not None:
            out[key] = mapping[key]
    ebs = mapping.get("Ebs")
    if ebs:
        snapshot_id = ebs.get("SnapshotId")
        size = ebs.get("VolumeSize")
        if size is None and snapshot_id:
            size = ec2_backend.get_snapshot(snapshot_id).volume_size
        out_ebs: dict[str, Any] = {
            "DeleteOnTermination": ebs.get("DeleteOnTermination", True),
            "VolumeType": ebs.get("VolumeType") or "standard",
        }
        for key, value in (("SnapshotId", snapshot_id), ("VolumeSize", size)):
            if value is not None:
                out_ebs[key] = value
        for key in ("Iops", "Encrypted", "KmsKeyId", "Throughput"):
            if ebs.get(key) is not None:
                out_ebs[key] = ebs[key]
        out["Ebs"] = out_ebs
    return out


def ami_snapshots_in_use() -> None:
    """EC2: a snapshot an AMI references cannot be deleted (InvalidSnapshot.InUse).

    Our cleanup code must skip snapshots behind AMIs. Moto only protects the
    snapshot it invents for CreateImage; RegisterImage dropped the given
    BlockDeviceMappings. Now RegisterImage stores them (after checking their
    snapshots exist, as EC2 does), DescribeImages shows them, the snapshot moto
    invented for such an AMI is dropped (EC2 creates none for RegisterImage),
    and DeleteSnapshot checks every AMI of the region for a reference.
    """
    from moto.ec2.exceptions import InvalidSnapshotInUse
    from moto.ec2.models.amis import Ami
    from moto.ec2.models.elastic_block_store import EBSBackend
    from moto.ec2.responses import EC2Response

    moto_register_image = EC2Response.register_image

    @functools.wraps(moto_register_image)
    def register_image(self: Any) -> Any:
        mappings = self._get_param("BlockDeviceMappings", []) or []
        for mapping in mappings:
            snapshot_id = (mapping.get("Ebs") or {}).get("SnapshotId")
            if snapshot_id:
                self.ec2_backend.get_snapshot(snapshot_id)  # InvalidSnapshot.NotFound
        result = moto_register_image(self)
        if mappings:
            ami = self.ec2_backend.amis[result.result["ImageId"]]
            setattr(ami, REGISTERED_BDMS, [_registered_mapping(m, self.ec2_backend) for m in mappings])
            ami.root_device_name = self._get_param("RootDeviceName") or mappings[0].get("DeviceName")
            ami.root_device_type = "ebs"
            for attr, param in (("architecture", "Architecture"), ("virtualization_type", "VirtualizationType")):
                if self._get_param(param):
                    setattr(ami, attr, self._get_param(param))
            invented = getattr(ami, "ebs_snapshot", None)
            if invented is not None:
                self.ec2_backend.snapshots.pop(invented.id, None)
        return result

    EC2Response.register_image = register_image

    moto_bdm_property = Ami.block_device_mappings

    def block_device_mappings(self: Any) -> list[dict[str, Any]]:
        registered = getattr(self, REGISTERED_BDMS, None)
        if registered is not None:
            return registered
        return moto_bdm_property.fget(self)

    Ami.block_device_mappings = property(block_device_mappings)

    moto_delete_snapshot = EBSBackend.delete_snapshot

    @functools.wraps(moto_delete_snapshot)
    def delete_snapshot(self: Any, snapshot_id: str) -> Any:
        if snapshot_id in self.snapshots:
            for ami in list(getattr(self, "amis", {}).values()):
                for mapping in ami.block_device_mappings:
                    if (mapping.get("Ebs") or {}).get("SnapshotId") == snapshot_id:
                        raise InvalidSnapshotInUse(snapshot_id, ami.id)
        return moto_delete_snapshot(self, snapshot_id)

    EBSBackend.delete_snapshot = delete_snapshot


def root_volume_at_root_device() -> None:
    """EC2 attaches an instance's root volume at its AMI's root device name.

    Moto always attaches the default root volume at /dev/sda1 but reports the
    AMI's RootDeviceName as the instance's. Harmless while every AMI said
    /dev/sda1; with RegisterImage keeping its RootDeviceName (ami_snapshots_in_use)
    an instance from a /dev/xvda AMI would report RootDeviceName /dev/xvda and
    have its root volume at /dev/sda1, and CreateSnapshots(ExcludeBootVolume)
    would then snapshot the root volume too. Part of extension d.
    """
    from moto.ec2.models.instances import Instance

    def setup_defaults(self: Any) -> None:
        volume = self.ec2_backend.create_volume(size=8, zone_name=self._placement.zone)
        self.ec2_backend.attach_volume(volume.id, self.id, self.root_device_name or "/dev/sda1", True)

    Instance.setup_defaults = setup_defaults


# --- e. Auto Scaling lifecycle actions ---------------------------------------


class LifecycleActionLog:
    """Accepted CompleteLifecycleAction/RecordLifecycleActionHeartbeat calls."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.records: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            open(path, "w", encoding="utf-8").close()

    def append(self, record: dict[str, Any]) -> None:
        with self.lock:
            self._append_locked(record)

    def append_unless(self, record: dict[str, Any], conflicts: Callable[[dict[str, Any]], bool]) -> bool:
        """Append record unless a recorded one conflicts with it; one atomic step."""
        with self.lock:
            if any(conflicts(existing) for existing in self.records):
                return False
            self._append_locked(record)
            return True

    def _append_locked(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        if self.path:
            with open(self.path, "a", encoding="utf-8") as out:
                out.write(json.dumps(record, sort_keys=True) + "\n")

    @staticmethod
    def _matches(record: dict[str, Any], query: dict[str, str]) -> bool:
        return all(record.get(key) == value for key, value in query.items())

    def select(self, query: dict[str, str]) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.records if self._matches(r, query)]

    def delete(self, query: dict[str, str]) -> int:
        with self.lock:
            kept = [r for r in self.records if not self._matches(r, query)]
            deleted = len(self.records) - len(kept)
            self.records = kept
            if self.path:
                with open(self.path, "w", encoding="utf-8") as out:
                    for record in kept:
                        out.write(json.dumps(record, sort_keys=True) + "\n")
            return deleted


def lifecycle_actions(action_log: LifecycleActionLog) -> None:
    """Auto Scaling lifecycle actions, which moto 5.2.5 does not implement.

    Our instance-termination handler completes (or heartbeats) the lifecycle
    action of a terminating instance. Against plain moto that call is an HTTP
    500, so the handler could not run end to end locally. The calls validate
    what AWS validates that moto can know about (group, hook, identifiers,
    result, a live instance, an action not completed yet) and are recorded in
    action_log, which is also what says whether an action was completed.
    """
    from moto.autoscaling.exceptions import ValidationError
    from moto.autoscaling.responses import AutoScalingResponse
    from moto.core.responses import EmptyResult
    from moto.ec2.exceptions import InvalidInstanceIdError
    from moto.ec2.models import ec2_backends

    def no_active_action(token: str | None, instance_id: str | None) -> Exception:
        if token:
            return ValidationError(f"No active Lifecycle Action found with token {token}")
        return ValidationError(f"No active Lifecycle Action found with instance ID {instance_id}")

    def instance_is_live(account_id: str, region: str, instance_id: str) -> bool:
        try:
            instance = ec2_backends[account_id][region].get_instance(instance_id)
        except InvalidInstanceIdError:
            return False
        return instance.state != "terminated"

    def accept(self: Any, action: str, result: str | None) -> Any:
        group = self._get_param("AutoScalingGroupName")
        hook = self._get_param("LifecycleHookName")
        token = self._get_param("LifecycleActionToken")
        instance_id = self._get_param("InstanceId")
        for wire_name, value in (("lifecycleHookName", hook), ("autoScalingGroupName", group)):
            if not value:
                raise ValidationError(
                    f"1 validation error detected: Value null at '{wire_name}' "
                    "failed to satisfy constraint: Member must not be null"
                )
        if action == "CompleteLifecycleAction" and result not in ("CONTINUE", "ABANDON"):
            raise ValidationError(
                f"Value '{result}' at 'lifecycleActionResult' failed to satisfy "
                "constraint: Member must be CONTINUE or ABANDON"
            )
        if not token and not instance_id:
            raise ValidationError("Either LifecycleActionToken or InstanceId must be specified.")
        backend = self.autoscaling_backend
        if group not in backend.autoscaling_groups:
            raise ValidationError(
                f"AutoScalingGroup name not found - AutoScalingGroup '{group}' not found"
            )
        hooks = backend.describe_lifecycle_hooks(as_name=group, lifecycle_hook_names=[hook])
        if not hooks:
            # AWS has no pending action for a hook that does not exist.
            raise no_active_action(token, instance_id)
        if instance_id and not instance_is_live(self.current_account, self.region, instance_id):
            raise no_active_action(None, instance_id)
        record = {
            "action": action,
            "region": self.region,
            "account_id": self.current_account,
            "group": group,
            "hook": hook,
            "instance_id": instance_id,
            "token": token,
            "result": result,
            "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        }
        scope = ("region", "account_id", "group", "hook")
        # The same action: by token when the call has one, else by instance id.
        key, value = ("token", token) if token else ("instance_id", instance_id)

        def completes_same_action(recorded: dict[str, Any]) -> bool:
            return (
                recorded.get("action") == "CompleteLifecycleAction"
                and recorded.get(key) == value
                and all(recorded.get(field) == record[field] for field in scope)
            )

        if not action_log.append_unless(record, completes_same_action):
            raise no_active_action(token, instance_id)
        return EmptyResult()

    def complete_lifecycle_action(self: Any) -> Any:
        return accept(self, "CompleteLifecycleAction", self._get_param("LifecycleActionResult"))

    def record_lifecycle_action_heartbeat(self: Any) -> Any:
        return accept(self, "RecordLifecycleActionHeartbeat", None)

    for name, method in (
        ("complete_lifecycle_action", complete_lifecycle_action),
        ("record_lifecycle_action_heartbeat", record_lifecycle_action_heartbeat),
    ):
        if name in vars(AutoScalingResponse):
            log(f"warning: moto now implements AutoScalingResponse.{name}; replacing it anyway")
        setattr(AutoScalingResponse, name, method)


# --- f. CreateVolume ClientToken ---------------------------------------------

CLIENT_TOKENS = "_ninelives_volume_client_tokens"
CLIENT_TOKEN_PARAMS = ("Size", "AvailabilityZone", "SnapshotId", "VolumeType")


def create_volume_client_token() -> None:
    """EC2 CreateVolume with a ClientToken is idempotent; moto ignored the token.

    Our volume-restore Lambda passes a ClientToken so that a retried
    invocation does not create a second volume. The tokens of a region live
    on moto's EC2 backend for that account and region (so a moto reset
    forgets them) as {token: (volume id, requested parameters)}.
    """
    from moto.core.responses import ActionResult
    from moto.ec2.exceptions import InvalidVolumeIdError
    from moto.ec2.responses import EC2Response

    moto_create_volume = EC2Response.create_volume
    lock = threading.Lock()

    @functools.wraps(moto_create_volume)
    def create_volume(self: Any) -> Any:
        token = self._get_param("ClientToken")
        if not token:
            return moto_create_volume(self)
        self.error_on_dryrun()
        requested = {name: self._get_param(name) for name in CLIENT_TOKEN_PARAMS}
        backend = self.ec2_backend
        with lock:
            tokens: dict[str, tuple[str, dict[str, Any]]] = vars(backend).setdefault(CLIENT_TOKENS, {})
            if token in tokens:
                volume_id, first_request = tokens[token]
                try:
                    volume = backend.get_volume(volume_id)
                except InvalidVolumeIdError:
                    volume = None  # deleted since: the token makes a new volume
                if volume is not None:
                    if requested != first_request:
                        raise _ec2_error(
                            "IdempotentParameterMismatch",
                            "Parameters on this idempotent request are inconsistent "
                            "with parameters used in previous request(s).",
                        )
                    return ActionResult(volume)
            result = moto_create_volume(self)
            tokens[token] = (result.result.id, requested)
            return result

    EC2Response.create_volume = create_volume


# --- g. AttachVolume checks ----------------------------------------------------


def attach_volume_checks() -> None:
    """EC2 AttachVolume refuses what cannot be attached; moto attached anything.

    Our volume-restore Lambda attaches restored volumes and must see EC2's
    errors locally: an attached volume attached again, a device name taken, a
    volume in another AZ, an instance that is not running or stopped. The
    checks run in the response, so moto's own attaches (root volumes of new
    instances) are not affected.
    """
    from moto.ec2.responses import EC2Response

    moto_attach_volume = EC2Response.attach_volume
    lock = threading.Lock()

    @functools.wraps(moto_attach_volume)
    def attach_volume(self: Any) -> Any:
        volume_id = self._get_param("VolumeId")
        instance_id = self._get_param("InstanceId")
        device = self._get_param("Device")
        backend = self.ec2_backend
        with lock:
            volume = backend.get_volume(volume_id)  # InvalidVolume.NotFound
            instance = backend.get_instance(instance_id)  # InvalidInstanceID.NotFound
            if volume.status != "available":
                raise _ec2_error("VolumeInUse", f"{volume_id} is already attached to an instance")
            if instance.state not in ("running", "stopped"):
                raise _ec2_error("IncorrectState", f"Instance '{instance_id}' is not 'running'.")
            if volume.availability_zone != instance.availability_zone:
                raise _ec2_error(
                    "InvalidVolume.ZoneMismatch",
                    f"The volume '{volume_id}' is not in the same availability zone "
                    f"as instance '{instance_id}'",
                )
            if any(name == device for name, _ in instance.get_block_device_mapping):
                raise _ec2_error(
                    "InvalidParameterValue",
                    f"Invalid value '{device}' for unixDevice. "
                    f"Attachment point {device} is already in use",
                )
            return moto_attach_volume(self)

    EC2Response.attach_volume = attach_volume


# --- h. Route 53 paging by set identifier -------------------------------------


def record_set_identifier_paging() -> None:
    """ListResourceRecordSets pages through a weighted set by set identifier.

    Our lifecycle hook finds its own member of a search cluster's weighted
    record; a cluster with more members than a page (300) must be paged by
    StartRecordIdentifier, which moto ignored (the same page came back
    forever).
    """
    from moto.core.responses import ActionResult
    from moto.route53.exceptions import InvalidInput
    from moto.route53.models import reverse_domain_name
    from moto.route53.responses import Route53
    from moto.route53.utils import validate_domain_name

    def key(record: Any) -> tuple[str, str, str]:
        return (reverse_domain_name(record.name), record.type, record.set_identifier or "")

    def list_resource_record_sets(self: Any) -> Any:
        zone_id = self._get_param("HostedZoneId")
        start_type = self._get_param("StartRecordType")
        start_name = self._get_param("StartRecordName")
        start_id = self._get_param("StartRecordIdentifier")
        max_items = self._get_int_param("MaxItems", 300)
        if (start_type and not start_name) or (start_id and not start_type):
            raise InvalidInput("The input is not valid")
        if start_name:
            validate_domain_name(start_name)
        zone = self.backend.get_hosted_zone(zone_id)
        records = sorted(zone.get_record_sets(start_type, start_name), key=key)
        if start_id:
            start = (reverse_domain_name(start_name), start_type, start_id)
            records = [r for r in records if key(r) >= start]
        page, after = records[:max_items], records[max_items : max_items + 1]
        result: dict[str, Any] = {"ResourceRecordSets": page, "IsTruncated": bool(after), "MaxItems": max_items}
        if after:
            result["NextRecordName"] = after[0].name
            result["NextRecordType"] = after[0].type
            if after[0].set_identifier:
                result["NextRecordIdentifier"] = after[0].set_identifier
        return ActionResult(result)

    Route53.list_resource_record_sets = list_resource_record_sets


# --- i. Route 53 change batches: checked, all or nothing, one at a time -------


def _dns_name(name: str | None) -> str:
    """A DNS name as Route 53 compares it: case-insensitive, trailing dot ignored."""
    name = (name or "").lower()
    return name[:-1] if name.endswith(".") else name


def _number(value: Any) -> Any:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return value


def atomic_change_batches() -> None:
    """ChangeResourceRecordSets: each change checked against the zone, the batch all or nothing.

    Our Redis promotion is a compare-and-swap on a Route 53 record (DELETE the
    value we read + CREATE ours, one batch): of concurrent invocations exactly
    one may win. Moto checked CREATE and DELETE against its journal of past
    changes, not against the records: a CREATE of an existing name and type
    with other values added a second record, a DELETE with stale values (or of
    a record deleted before) succeeded and deleted every record of that name
    and type (with a SetIdentifier: every record with that identifier, any
    name), a CREATE identical to an earlier one failed even after that record
    was deleted, and a failing change could leave earlier ones applied. So
    both concurrent swaps succeeded. Now the batch runs under one lock on a
    copy of the zone's records, change after change, and the copy replaces
    the records only when every change passed. UPSERT is moto's, unchecked.
    """
    import copy
    import types

    from moto.route53.exceptions import DnsNameInvalidForZone, InvalidActionValue, Route53ClientError
    from moto.route53.models import FakeZone, Route53Backend
    from moto.route53.utils import validate_domain_name

    lock = threading.Lock()

    def label(record_set: dict[str, Any]) -> str:
        # Route 53 stores names in lowercase and says so in its messages.
        parts = [f"name='{_dns_name(record_set['Name'])}.'", f"type='{record_set.get('Type')}'"]
        if record_set.get("SetIdentifier") is not None:
            parts.append(f"set-identifier='{record_set['SetIdentifier']}'")
        return "[" + ", ".join(parts) + "]"

    def alias(target: dict[str, Any] | None) -> tuple[str, Any] | None:
        return (_dns_name(target.get("DNSName")), target.get("HostedZoneId")) if target else None

    def same_values(record: Any, given: dict[str, Any]) -> bool:
        values = sorted(str(v.get("Value")) for v in given.get("ResourceRecords") or [])
        return (
            _number(record.ttl) == _number(given.get("TTL"))
            and sorted(str(v) for v in record.records or []) == values
            and _number(record.weight) == _number(given.get("Weight"))
            and alias(record.alias_target) == alias(given.get("AliasTarget"))
        )

    def change_resource_record_sets(self: Any, zoneid: str, change_list: list[dict[str, Any]]) -> None:
        zone = self.get_hosted_zone(zoneid)  # NoSuchHostedZone
        zone_name = _dns_name(zone.name)
        with lock:
            # FakeZone's own add/upsert, run on a scratch zone holding a copy
            # of the records (copying the FakeZone would register a model).
            work = types.SimpleNamespace(rrsets=list(zone.rrsets))
            errors: list[str] = []
            for change in change_list:
                action = change["Action"]
                if action not in ("CREATE", "UPSERT", "DELETE"):
                    raise InvalidActionValue(action)
                record_set = copy.deepcopy(change["ResourceRecordSet"])
                validate_domain_name(record_set["Name"], code="InvalidChangeBatch")
                name = _dns_name(record_set["Name"])
                if name != zone_name and not name.endswith("." + zone_name):
                    raise DnsNameInvalidForZone(name=record_set["Name"], zone_name=zone.name)
                if not record_set["Name"].endswith("."):
                    record_set["Name"] += "."
                key = (name, record_set.get("Type"), record_set.get("SetIdentifier"))
                current = next(
                    (r for r in work.rrsets if (_dns_name(r.name), r.type, r.set_identifier) == key), None
                )
                if action == "DELETE":
                    if current is None:
                        errors.append(f"Tried to delete resource record set {label(record_set)} but it was not found")
                    elif not same_values(current, record_set):
                        errors.append(
                            f"Tried to delete resource record set {label(record_set)} "
                            "but the values provided do not match the current values"
                        )
                    else:
                        work.rrsets = [r for r in work.rrsets if r is not current]
                    continue
                if "ResourceRecords" in record_set:
                    record_set["ResourceRecords"] = [rr["Value"] for rr in record_set["ResourceRecords"]]
                if action == "UPSERT":
                    FakeZone.upsert_rrset(work, record_set)
                elif current is not None:
                    errors.append(f"Tried to create resource record set {label(record_set)} but it already exists")
                else:
                    FakeZone.add_rrset(work, record_set)
            if errors:
                raise Route53ClientError("InvalidChangeBatch", "[" + ", ".join(errors) + "]")
            zone.rrsets = work.rrsets  # one assignment: readers see all of the batch or none

    Route53Backend.change_resource_record_sets = change_resource_record_sets


# Route 53's REST operations by method and the path after /2013-04-01/, with
# ids replaced by "*": the ones ninelives and its tests call.
ROUTE53_OPERATIONS = {
    ("GET", "hostedzone/*/rrset"): "ListResourceRecordSets",
    ("POST", "hostedzone/*/rrset"): "ChangeResourceRecordSets",
    ("GET", "change/*"): "GetChange",
    ("GET", "hostedzone/*"): "GetHostedZone",
    ("GET", "hostedzone"): "ListHostedZones",
    ("POST", "hostedzone"): "CreateHostedZone",
}
CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")


class CallCounter:
    """Counts AWS requests by "service:Action", and delays them (--bench)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.times: dict[str, list[float]] = {}
        self.latency = 0.0

    @staticmethod
    def operation(environ: dict[str, Any]) -> str:
        match = CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
        service = match.group(1) if match else "-"
        target = environ.get("HTTP_X_AMZ_TARGET")
        if target:
            return f"{service}:{target.rsplit('.', 1)[-1]}"
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "")
        if path.startswith("/2013-04-01/"):
            parts = path[len("/2013-04-01/") :].strip("/").split("/")
            shape = "/".join("*" if i % 2 else part for i, part in enumerate(parts))
            return f"{service}:{ROUTE53_OPERATIONS.get((method, shape), f'{method} {shape}')}"
        action = parse_qs(environ.get("QUERY_STRING", "")).get("Action")
        if not action and method == "POST" and "form-urlencoded" in environ.get("CONTENT_TYPE", ""):
            # The body is read here and handed on to moto unchanged (a
            # chunked body, without a length, is read to its end).
            length = int(environ.get("CONTENT_LENGTH") or 0)
            if length > 0:
                body = environ["wsgi.input"].read(length)
            elif environ.get("wsgi.input_terminated"):
                body = environ["wsgi.input"].read()
            else:
                body = b""
            if body:
                environ["wsgi.input"] = io.BytesIO(body)
                environ["CONTENT_LENGTH"] = str(len(body))
            action = parse_qs(body.decode("utf-8", "replace")).get("Action")
        return f"{service}:{action[-1] if action else f'{method} {path}'}"

    def count(self, environ: dict[str, Any]) -> None:
        key = self.operation(environ)
        now = time.monotonic()
        with self.lock:
            self.times.setdefault(key, []).append(now - self.started)

    def report(self, with_times: bool) -> dict[str, Any]:
        with self.lock:
            counts = {key: len(times) for key, times in sorted(self.times.items())}
            report: dict[str, Any] = {"counts": counts, "total": sum(counts.values())}
            if with_times:
                report["times"] = {key: list(times) for key, times in self.times.items()}
        return report

    def reset(self) -> None:
        with self.lock:
            self.times = {}
            self.started = time.monotonic()


class NinelivesRoutes:
    """WSGI wrapper: serves /_ninelives/* itself, everything else goes to moto."""

    def __init__(
        self,
        moto_app: Any,
        action_log: LifecycleActionLog,
        info: dict[str, Any],
        counter: CallCounter | None = None,
    ) -> None:
        self.moto_app = moto_app
        self.action_log = action_log
        self.info = info
        self.counter = counter

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if not path.startswith(ROUTE_PREFIX):
            if self.counter is not None and not path.startswith("/moto-api"):
                self.counter.count(environ)
                if self.counter.latency:
                    time.sleep(self.counter.latency)
            return self.moto_app(environ, start_response)
        method = environ.get("REQUEST_METHOD", "GET")
        query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        if path == INFO_ROUTE and method == "GET":
            return self._json(start_response, "200 OK", self.info)
        if path == LIFECYCLE_ROUTE and method == "GET":
            return self._json(start_response, "200 OK", self.action_log.select(query))
        if path == LIFECYCLE_ROUTE and method == "DELETE":
            return self._json(start_response, "200 OK", {"deleted": self.action_log.delete(query)})
        if path == CALLS_ROUTE and self.counter is not None:
            if method == "GET":
                return self._json(start_response, "200 OK", self.counter.report(query.get("times") == "1"))
            if method == "DELETE":
                self.counter.reset()
                return self._json(start_response, "200 OK", {"reset": True})
        if path == LATENCY_ROUTE and self.counter is not None and method == "PUT":
            try:
                latency_ms = float(query.get("ms", ""))
            except ValueError:
                latency_ms = -1.0
            if not 0 <= latency_ms <= 10_000:
                return self._json(start_response, "400 Bad Request", {"error": "ms must be a number from 0 to 10000"})
            self.counter.latency = latency_ms / 1000
            return self._json(start_response, "200 OK", {"latency_ms": latency_ms})
        bench_routes = (CALLS_ROUTE, LATENCY_ROUTE) if self.counter is not None else ()
        if path in (INFO_ROUTE, LIFECYCLE_ROUTE, *bench_routes):
            return self._json(start_response, "405 Method Not Allowed", {"error": "method not allowed"})
        return self._json(start_response, "404 Not Found", {"error": f"no route {path}"})

    @staticmethod
    def _json(start_response: Any, status: str, body: Any) -> list[bytes]:
        data = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]


# --- j. FIFO redelivery order --------------------------------------------------


def fifo_redelivery_order() -> None:
    """ReceiveMessage: a group's messages that are visible again are no longer in flight."""
    from moto.sqs.models import SQSBackend

    original = SQSBackend.receive_message

    def receive_message(self: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        queue = self.get_queue(queue_name)
        if queue.fifo_queue:
            for message in [m for m in queue.pending_messages if m.visible]:
                queue.pending_messages.remove(message)
        return original(self, queue_name, *args, **kwargs)

    SQSBackend.receive_message = receive_message


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("LOCAL_AWS_PORT", "5000")))
    parser.add_argument("--without-tag-index", action="store_true", help="leave extension b out (for measuring it)")
    parser.add_argument("--bench", action="store_true", help="count AWS requests by operation, allow added latency")
    args = parser.parse_args(argv)

    no_default_amis()  # before moto is imported
    os.environ.setdefault("MOTO_PORT", str(args.port))  # moto builds some URLs from it
    moto_version = check_moto_version()

    extensions = ["no_default_amis"]
    if not args.without_tag_index:
        index_tag_lookup()
        extensions.append("index_tag_lookup")
    page_describe_calls()
    ami_snapshots_in_use()
    root_volume_at_root_device()
    action_log = LifecycleActionLog(os.environ.get("NINELIVES_EMULATOR_LOG") or None)
    lifecycle_actions(action_log)
    create_volume_client_token()
    attach_volume_checks()
    record_set_identifier_paging()
    atomic_change_batches()
    fifo_redelivery_order()
    extensions += [
        "page_describe_calls",
        "ami_snapshots_in_use",
        "lifecycle_actions",
        "create_volume_client_token",
        "attach_volume_checks",
        "record_set_identifier_paging",
        "atomic_change_batches",
        "fifo_redelivery_order",
    ]

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    info = {
        "launcher": LAUNCHER_NAME,
        "pid": os.getpid(),
        "moto": moto_version,
        "extensions": extensions,
        "lifecycle_log": action_log.path,
        "bench": args.bench,
    }
    counter = CallCounter() if args.bench else None
    app = NinelivesRoutes(DomainDispatcherApplication(create_backend_app), action_log, info, counter)
    server = make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)

    def stop(signum: int, _frame: Any) -> None:
        log(f"signal {signum}: shutting down")
        # shutdown() waits for serve_forever() to return, which runs in this
        # (the main) thread: call it from another one.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log(
        f"moto {moto_version} on http://{args.host}:{server.server_port} "
        f"(pid {os.getpid()}), extensions: {', '.join(extensions)}; "
        f"lifecycle log: {action_log.path or 'memory only'}"
    )
    server.serve_forever()
    server.server_close()
    log("stopped")


if __name__ == "__main__":
    main()
