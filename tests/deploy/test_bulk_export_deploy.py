"""Bulk export in the rendered overlays: a shared bucket the mesh lets the service reach.

Every overlay runs more than one replica, so export files cannot stay on one pod's disk (a poll or
download on another replica would 404): the bucket is configured, the hosts boto3 calls for that
bucket and region are admitted by a ServiceEntry, the pod has a cloud identity, and staging uses a
bounded volume of its own (components/bulk-export-s3/README.md).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from tests.deploy.conftest import Rendered


def _config(overlay: Rendered) -> dict[str, str]:
    data: dict[str, str] = overlay.one("ConfigMap", "healthcare-app-config")["data"]
    return data


def _hosts_boto3_calls(config: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The hosts of a real boto3 upload and of the regional STS, stopped before the network."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "placeholder")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "placeholder")
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_STS_REGIONAL_ENDPOINTS"):
        monkeypatch.setenv(name, config[name])
    called: list[str] = []

    def stop(request: Any, **_: Any) -> None:
        called.append(urlsplit(request.url).hostname or "")
        raise StopIteration

    s3 = boto3.client("s3")
    s3.meta.events.register("before-send.s3.*", stop)
    with pytest.raises(StopIteration):
        s3.put_object(Bucket=config["BULK_EXPORT_S3_BUCKET"],
                      Key=config["BULK_EXPORT_S3_PREFIX"] + "probe", Body=b"")  # fmt: skip
    sts_host = urlsplit(boto3.client("sts").meta.endpoint_url).hostname or ""
    return {*called, sts_host}


def test_replicas_share_a_bucket_the_mesh_admits(
    overlay: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert overlay.one("HorizontalPodAutoscaler", "healthcare-app-hpa")["spec"]["minReplicas"] > 1
    config = _config(overlay)
    assert config["BULK_EXPORT_S3_BUCKET"]
    admitted = set(overlay.one("ServiceEntry", "bulk-export-bucket")["spec"]["hosts"])
    needed = _hosts_boto3_calls(config, monkeypatch)
    assert needed <= admitted, f"{overlay.env}: boto3 would call {needed - admitted}"
    assert not any("*" in host for host in admitted)


def test_the_pod_has_a_cloud_identity_and_a_bounded_staging_volume(overlay: Rendered) -> None:
    account = overlay.one("ServiceAccount", "healthcare-app")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:")
    pod = overlay.one("Deployment", "healthcare-app")["spec"]["template"]["spec"]
    staging = _config(overlay)["BULK_EXPORT_DIR"]
    assert not staging.startswith("/tmp")
    app = next(c for c in pod["containers"] if c["name"] == "healthcare-app")
    mount = next(m for m in app["volumeMounts"] if m["mountPath"] == staging)
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["emptyDir"]["sizeLimit"]


def test_environments_never_share_a_bucket_or_a_role(rendered: dict[str, Rendered]) -> None:
    buckets = {env: _config(r)["BULK_EXPORT_S3_BUCKET"] for env, r in rendered.items()}
    roles = {env: r.one("ServiceAccount", "healthcare-app")["metadata"]["annotations"][
        "eks.amazonaws.com/role-arn"] for env, r in rendered.items()}  # fmt: skip
    assert len(set(buckets.values())) == len(buckets), buckets
    assert len(set(roles.values())) == len(roles), roles
