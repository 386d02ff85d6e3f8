"""Where sealed export files live: a local directory, or an S3-compatible bucket (docs/bulk.md).

The runner always writes a job's files into a local staging directory (sealed as they are
written); :meth:`publish` makes them downloadable. Locally that directory is the store; with a
bucket each file is uploaded (boto3, multipart for large files, in a worker thread so the event
loop never waits on the network) and the staging copy removed. Objects hold the same sealed bytes
as the local files: the bucket never sees plaintext, whatever its own encryption settings.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import IO, Any, Protocol

from healthstack.config import Settings


class Storage(Protocol):
    root: Path  # the local directory jobs stage (or keep) their files in, one folder per export

    def staging(self, job_id: object) -> Path: ...

    async def publish(self, job_id: object, names: list[str]) -> None: ...

    def open(self, job_id: object, name: str) -> IO[bytes]:
        """A readable stream of the sealed file; FileNotFoundError when it is gone (blocking:
        call it from a worker thread)."""
        ...

    async def remove(self, job_id: object) -> None: ...


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root

    def staging(self, job_id: object) -> Path:
        return self.root / str(job_id)

    async def publish(self, job_id: object, names: list[str]) -> None:
        return None  # written in place

    def open(self, job_id: object, name: str) -> IO[bytes]:
        return (self.staging(job_id) / name).open("rb")

    async def remove(self, job_id: object) -> None:
        await asyncio.to_thread(shutil.rmtree, self.staging(job_id), True)


class S3Storage(LocalStorage):
    def __init__(self, root: Path, bucket: str, prefix: str, client: Any) -> None:
        super().__init__(root)
        self.bucket, self.prefix, self.client = bucket, prefix, client

    def key(self, job_id: object, name: str = "") -> str:
        return f"{self.prefix}{job_id}/{name}"

    async def publish(self, job_id: object, names: list[str]) -> None:
        for name in names:
            path = self.staging(job_id) / name
            await asyncio.to_thread(self.client.upload_file, str(path), self.bucket,
                                    self.key(job_id, name))  # fmt: skip
        await super().remove(job_id)

    def open(self, job_id: object, name: str) -> IO[bytes]:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.key(job_id, name))
        except self.client.exceptions.NoSuchKey:
            raise FileNotFoundError(name) from None
        body: IO[bytes] = response["Body"]
        return body

    async def remove(self, job_id: object) -> None:
        await super().remove(job_id)
        await asyncio.to_thread(self._delete_prefix, self.key(job_id))

    def _delete_prefix(self, prefix: str) -> None:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        for page in pages:
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})


def storage_for(settings: Settings) -> Storage:
    root = settings.bulk_export_dir or settings.data_dir / "bulk-export"
    if not settings.bulk_export_s3_bucket:
        return LocalStorage(root)
    import boto3  # only when a bucket is configured

    client = boto3.client("s3", endpoint_url=settings.bulk_export_s3_endpoint)
    return S3Storage(root, settings.bulk_export_s3_bucket, settings.bulk_export_s3_prefix, client)
