"""Live Lambda scan: how long listing and scanning N functions in two regions takes.

Starts an in-process moto server, deploys N functions (a tenth with planted secrets), then
times the runner over a ``LambdaSource`` (environment only, and with --include-code through an
injected downloader, since moto cannot serve Code.Location). Prints a Markdown table.

    python benchmarks/lambda_scan.py --functions 320
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import time
import zipfile

import boto3
from moto.server import ThreadedMotoServer

from keyward.core.redaction import Fingerprinter
from keyward.scan.engine import Engine
from keyward.scan.postpass import KMS_RULE_ID
from keyward.scan.rules import load_rules
from keyward.scan.runner import Runner
from keyward.scan.sources.aws_lambda import LambdaOptions, LambdaSource, download_package

REGIONS = ("us-east-1", "eu-west-1")
TOKEN = "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"  # keyward: allow (a fake planted token)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--functions", type=int, default=320)
    args = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x",
        AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )  # fmt: skip
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("index.py", "def handler(e, c):\n    return 1\n" * 50)
    code = buf.getvalue()
    role = boto3.client("iam").create_role(
        RoleName="r", AssumeRolePolicyDocument=json.dumps({"Statement": []})
    )["Role"]["Arn"]
    t = time.perf_counter()
    for i in range(args.functions):
        region = REGIONS[i % 2]
        env = {"STAGE": "prod", "LOG_LEVEL": "info", "DB_HOST": "db.internal"}
        if i % 10 == 0:
            env["GITHUB_TOKEN"] = TOKEN
        boto3.client("lambda", region_name=region).create_function(
            FunctionName=f"f{i:04d}", Runtime="python3.12", Role=role, Handler="index.handler",
            Code={"ZipFile": code}, Environment={"Variables": env},
        )  # fmt: skip
    deploy = time.perf_counter() - t
    engine = Engine(load_rules(), Fingerprinter(b"k" * 32))
    rows = []
    for label, opts, dl in (
        ("environment only", LambdaOptions(regions=REGIONS), None),
        ("--include-code", LambdaOptions(regions=REGIONS, include_code=True),
         lambda p, cap: code),
    ):  # fmt: skip
        t = time.perf_counter()
        result = Runner(engine).run(LambdaSource(opts, downloader=dl or download_package))
        wall = time.perf_counter() - t
        secrets = [f for f in result.findings if f.rule_id != KMS_RULE_ID]
        rows.append((label, wall, len(secrets)))
    server.stop()
    print(f"deployed {args.functions} functions in {deploy:.1f}s (engine {engine.backend})\n")
    print("| mode | functions | regions | wall s | functions/s | secret findings |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for label, wall, n in rows:
        print(
            f"| {label} | {args.functions} | 2 | {wall:.2f} | {args.functions / wall:.0f} | {n} |"
        )


if __name__ == "__main__":
    main()
