"""Bulk export to an S3-compatible bucket (BULK_EXPORT_S3_*): a moto S3 server on loopback stands
in for the bucket; the service talks to it with boto3 over real HTTP, as it would to MinIO."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer
from tests.conftest import Database, Service, start_service
from tests.fhir.conftest import client_for
from tests.fhir.test_bulk_export import by_id, download, kick_off, searched, wait

from healthstack.service.embedded_pg import free_port

BUCKET = "exports"
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
       "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip


@pytest.fixture(scope="module")
def s3() -> Iterator[tuple[str, Any]]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")  # fmt: skip
    client.create_bucket(Bucket=BUCKET)
    yield endpoint, client
    server.stop()


@pytest.fixture(scope="module")
def service(
    module_database: Database, tmp_path_factory: pytest.TempPathFactory, s3: tuple[str, Any]
) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("s3svc")
    svc = start_service(module_database, tmp / "service.log", BULK_EXPORT_DIR=str(tmp / "stage"),
                        BULK_EXPORT_S3_BUCKET=BUCKET, BULK_EXPORT_S3_ENDPOINT=s3[0],
                        BULK_EXPORT_S3_PREFIX="hs/", BULK_EXPORT_EXPIRY_SECONDS="3", **AWS)  # fmt: skip
    yield svc
    svc.stop()


def keys(client: Any) -> list[str]:
    return [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def test_export_to_a_bucket_round_trip_cancel_and_expiry(
    service: Service, s3: tuple[str, Any]
) -> None:
    client = s3[1]
    with client_for(service) as fhir:
        for family in ("Objecta", "Objectb"):
            fhir.post("/Patient", json={"resourceType": "Patient", "name": [{"family": family}]})
        url = kick_off(fhir, "/$export", _type="Patient")
        export_id = url.rsplit("/", 1)[1]
        (output,) = wait(fhir, url)["output"]
        assert keys(client) == [f"hs/{export_id}/Patient-1.ndjson"]
        stored = client.get_object(Bucket=BUCKET, Key=keys(client)[0])["Body"].read()
        assert b"Objecta" not in stored  # the bucket holds sealed bytes only
        assert by_id(download(fhir, output["url"])) == by_id(searched(fhir, "Patient"))
        assert not list(Path(service.log_path.parent, "stage").rglob("*.ndjson"))  # unstaged
        assert fhir.delete(url).status_code == 202  # cancel: the objects go at once
        assert keys(client) == []
        assert fhir.get(output["url"]).status_code == 404
        second = kick_off(fhir, "/$export", _type="Patient")
        file_url = wait(fhir, second)["output"][0]["url"]
        assert len(keys(client)) == 1
        deadline = time.monotonic() + 8  # expiry is 3 s: the sweeper deletes the object
        while keys(client) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert keys(client) == []
        assert fhir.get(file_url).status_code == 404
        assert httpx.get(file_url).status_code == 401
