"""Unmodified boto3 and AWS CLI code, pointed at openmaker only by AWS_ENDPOINT_URL."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import boto3
import pytest

MIB = 1024 * 1024


@pytest.fixture
def aws_env(server, monkeypatch):
    """The environment a user sets: endpoint and any credentials, nothing else."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    values = {"AWS_ENDPOINT_URL": server.url, "AWS_ACCESS_KEY_ID": "anything",
              "AWS_SECRET_ACCESS_KEY": "anything", "AWS_DEFAULT_REGION": "us-east-1"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return dict(os.environ)


def test_boto3_upload_and_download_file_use_multipart(aws_env, tmp_path):
    s3 = boto3.client("s3")  # no endpoint_url: taken from AWS_ENDPOINT_URL
    s3.create_bucket(Bucket="drop-in-big")
    source = tmp_path / "fifty.bin"
    source.write_bytes(os.urandom(50 * MIB))
    s3.upload_file(str(source), "drop-in-big", "fifty.bin")
    head = s3.head_object(Bucket="drop-in-big", Key="fifty.bin")
    assert head["ContentLength"] == 50 * MIB
    assert head["ETag"].endswith('-7"')  # 8 MiB parts: boto3's default multipart chunk size
    target = tmp_path / "copy.bin"
    s3.download_file("drop-in-big", "fifty.bin", str(target))
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(
        source.read_bytes()).digest()


@pytest.mark.parametrize("size", [0, 1, 1023, 5 * MIB - 1, 5 * MIB, 8 * MIB + 1])
def test_boto3_round_trips_of_every_size(aws_env, size):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=f"drop-in-sizes-{size}")
    data = os.urandom(size)
    s3.put_object(Bucket=f"drop-in-sizes-{size}", Key="blob", Body=data)
    assert s3.get_object(Bucket=f"drop-in-sizes-{size}", Key="blob")["Body"].read() == data


def test_boto3_resource_api_and_paginators(aws_env):
    s3 = boto3.resource("s3")
    bucket = s3.Bucket("drop-in-resource")
    bucket.create()
    for index in range(25):
        bucket.put_object(Key=f"items/{index:03d}", Body=str(index).encode())
    keys = [o.key for o in bucket.objects.filter(Prefix="items/").page_size(7)]
    assert keys == [f"items/{i:03d}" for i in range(25)]
    bucket.objects.all().delete()
    assert list(bucket.objects.all()) == []
    bucket.delete()


def test_boto3_sagemaker_and_sts(aws_env):
    sagemaker = boto3.client("sagemaker")
    assert sagemaker.list_training_jobs()["TrainingJobSummaries"] == []
    pages = list(sagemaker.get_paginator("list_endpoints").paginate())
    assert pages and pages[0]["Endpoints"] == []
    assert boto3.client("sts").get_caller_identity()["Account"] == "000000000000"


def aws(*args: str, env: dict) -> str:
    result = subprocess.run([sys.executable, "-m", "awscli", *args], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_aws_cli(aws_env, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("1,2\n")
    (tmp_path / "data" / "nested").mkdir()
    (tmp_path / "data" / "nested" / "b.csv").write_text("3,4\n")
    aws("s3", "mb", "s3://cli-bucket", env=aws_env)
    aws("s3", "cp", str(tmp_path / "data"), "s3://cli-bucket/data/", "--recursive", env=aws_env)
    listing = aws("s3", "ls", "s3://cli-bucket/data/", "--recursive", env=aws_env)
    assert "data/a.csv" in listing and "data/nested/b.csv" in listing
    objects = json.loads(aws("s3api", "list-objects-v2", "--bucket", "cli-bucket",
                             env=aws_env))
    assert sorted(o["Key"] for o in objects["Contents"]) == ["data/a.csv", "data/nested/b.csv"]
    aws("s3", "cp", "s3://cli-bucket/data/nested/b.csv", str(tmp_path / "b.csv"), env=aws_env)
    assert (tmp_path / "b.csv").read_text() == "3,4\n"
    jobs = json.loads(aws("sagemaker", "list-training-jobs", env=aws_env))
    assert jobs["TrainingJobSummaries"] == []
    aws("s3", "rm", "s3://cli-bucket/", "--recursive", env=aws_env)
    aws("s3", "rb", "s3://cli-bucket", env=aws_env)
