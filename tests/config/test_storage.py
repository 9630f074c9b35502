"""With the AWS_* variables set, files go to S3; without them, to local disk under var/media."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
from django.core.files.base import ContentFile
from django.core.files.storage import storages
storage = storages["default"]
name = storage.save("docs/hello.txt", ContentFile(b"hello from the platform"))
print(type(storage).__name__, name, storage.open(name).read().decode())
"""


def run_shell(env: dict[str, str]) -> str:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTEST"))}
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", SCRIPT],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "config.settings_test", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.slow
def test_s3_settings_store_files_in_the_bucket(s3_server, tmp_path):
    credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}
    s3 = boto3.client("s3", endpoint_url=s3_server, **credentials)
    s3.create_bucket(Bucket="agents-files")
    output = run_shell(
        {
            "AWS_STORAGE_BUCKET_NAME": "agents-files",
            "AWS_S3_ENDPOINT_URL": s3_server,
            "AWS_S3_REGION_NAME": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "VAR_DIR": str(tmp_path),
        }
    )
    assert output == "S3Storage docs/hello.txt hello from the platform"
    body = s3.get_object(Bucket="agents-files", Key="docs/hello.txt")["Body"].read()
    assert body == b"hello from the platform"
    assert not (tmp_path / "media").exists()


def test_without_s3_settings_files_go_to_local_disk(tmp_path):
    output = run_shell({"MEDIA_ROOT": str(tmp_path / "media")})
    assert output.startswith("FileSystemStorage docs/hello.txt hello from the platform")
    assert (tmp_path / "media" / "docs" / "hello.txt").read_bytes() == b"hello from the platform"
