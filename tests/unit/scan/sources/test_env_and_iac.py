"""Key/value understanding: the process environment, .env, compose, Kubernetes and IaC."""

from __future__ import annotations

import random
import string
import subprocess
import sys
import textwrap
import zlib

import pytest

from keyward.scan.engine import Engine
from keyward.scan.engine_spec import EngineSpec
from keyward.scan.model import Chunk, Location, SourceKind
from keyward.scan.sources.env import ProcessEnvSource, parse_dotenv
from keyward.scan.sources.iac import extract, extract_terraform, iac_kind
from keyward.scan.sources.yamlnodes import is_reference_text
from keyward.scan.validators import base62
from keyward.scan.variables import classify, match_with_variables


def github_token(seed: int) -> str:
    rng = random.Random(seed)
    body = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(30))
    return "ghp_" + body + base62(zlib.crc32(body.encode()), 6)


TOKEN = github_token(41)
PASSWORD = "hunter2-Prod-88"  # no provider format: caught by its variable's name
STRIPE = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"


@pytest.fixture(scope="module")
def engine() -> Engine:
    return EngineSpec(fingerprint_key=bytes(range(32))).build()


def findings(engine: Engine, path: str, text: str):  # type: ignore[no-untyped-def]
    found = match_with_variables(engine, Chunk(textwrap.dedent(text), Location(path=path)))
    return [f for f in found if f.suppressed_by is None]


def summary(fs) -> list[tuple[str | None, str | None, int, str]]:  # type: ignore[no-untyped-def]
    return sorted((f.location.resource, f.location.variable, f.location.line, f.secret) for f in fs)


# ------------------------------------------------------------------ process environment
def test_process_environment_one_chunk_per_variable(engine: Engine) -> None:
    source = ProcessEnvSource({"HOME": "/root", "GITHUB_TOKEN": TOKEN, "DB_PASSWORD": PASSWORD})
    found = [f for c in source.chunks() for f in engine.scan(c)]
    assert sorted((f.location.variable, f.location.kind, f.location.line) for f in found) == [
        ("DB_PASSWORD", SourceKind.ENV, 0),
        ("GITHUB_TOKEN", SourceKind.ENV, 0),
    ]
    assert all(f.location.display() == f"${f.location.variable}" for f in found)


def test_cli_env_names_the_variable_and_never_echoes_the_value(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {"PATH": "/usr/bin:/bin", "DEPLOY_TOKEN": TOKEN, "SERVICE_PASSWORD": PASSWORD}
    env.update({k: v for k, v in __import__("os").environ.items() if k.startswith("KEYWARD_")})
    for fmt in ("text", "json", "sarif", "csv"):
        proc = subprocess.run(
            [sys.executable, "-m", "keyward", "scan", "--env", "--format", fmt, "--no-color"],
            env=env,
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert proc.returncode == 1, proc.stderr
        assert "DEPLOY_TOKEN" in proc.stdout and "SERVICE_PASSWORD" in proc.stdout
        assert TOKEN not in proc.stdout + proc.stderr
        assert PASSWORD not in proc.stdout + proc.stderr


# ------------------------------------------------------------------ .env
def test_dotenv_unquoted_quoted_export_comments_and_multiline() -> None:
    text = (
        "# comment\n"
        "API_TOKEN=abc123 # trailing comment\n"
        "export QUOTED='single # not a comment'\n"
        'DOUBLE="two words"\n'
        'PEM="-----BEGIN KEY-----\n'
        "line2\n"
        '-----END KEY-----"\n'
        "EMPTY=\n"
        "AFTER=1\n"
    )
    got = [(kv.name, kv.value, kv.line, kv.column) for kv in parse_dotenv(text)]
    assert got == [
        ("API_TOKEN", "abc123", 2, 11),
        ("QUOTED", "single # not a comment", 3, 16),
        ("DOUBLE", "two words", 4, 9),
        ("PEM", "-----BEGIN KEY-----\nline2\n-----END KEY-----", 5, 6),
        ("AFTER", "1", 9, 7),
    ]
    assert parse_dotenv(text)[3].lines == (5, 6, 7)


def test_dotenv_file_findings_name_the_variable_and_column(engine: Engine) -> None:
    text = f"A=1\nDB_PASSWORD={PASSWORD}\nexport GH={TOKEN}\nOK={PASSWORD} # keyward: allow\n"
    fs = findings(engine, "deploy/.env.production", text)
    assert sorted((f.location.variable, f.location.line, f.location.column) for f in fs) == [
        ("DB_PASSWORD", 2, 13),
        ("GH", 3, 11),
    ]
    assert all(f.location.kind is SourceKind.FILE for f in fs)


# ------------------------------------------------------------------ compose / Kubernetes
def test_compose_environment_mapping_and_list(engine: Engine) -> None:
    text = f"""
        services:
          db:
            image: postgres
            environment:
              - POSTGRES_PASSWORD={PASSWORD}
              - FROM_HOST=${{HOST_PASSWORD}}
          app:
            environment:
              GITHUB_TOKEN: {TOKEN}
              DB_PASSWORD: ${{DB_PASSWORD}}
        """
    assert summary(findings(engine, "docker-compose.yml", text)) == [
        ("service app", "GITHUB_TOKEN", 10, TOKEN),
        ("service db", "POSTGRES_PASSWORD", 6, PASSWORD),
    ]


def test_kubernetes_env_values_but_not_value_from(engine: Engine) -> None:
    text = f"""
        apiVersion: batch/v1
        kind: CronJob
        metadata:
          name: nightly
        spec:
          jobTemplate:
            spec:
              template:
                spec:
                  containers:
                    - name: job
                      image: busybox
                      env:
                        - name: DB_PASSWORD
                          value: "{PASSWORD}"
                        - name: API_TOKEN
                          valueFrom:
                            secretKeyRef: {{name: api, key: token}}
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {{name: other}}
        data: {{A: b}}
        """
    assert summary(findings(engine, "k8s/cron.yaml", text)) == [
        ("CronJob/nightly container job", "DB_PASSWORD", 16, PASSWORD),
    ]


# ------------------------------------------------------------------ IaC
def test_serverless_provider_and_function_environments(engine: Engine) -> None:
    text = f"""
        service: api
        provider:
          name: aws
          environment:
            STAGE: prod
            DB_PASSWORD: "{PASSWORD}"
            FROM_SSM: ${{ssm:/api/${{sls:stage}}/password}}
            FROM_ENV: ${{env:TOKEN}}
        functions:
          hello:
            handler: handler.hello
            environment:
              GITHUB_TOKEN: {TOKEN}
              REF: ${{self:custom.token}}
        """
    fs = findings(engine, "serverless.yml", text)
    assert summary(fs) == [
        ("hello", "GITHUB_TOKEN", 14, TOKEN),
        ("provider", "DB_PASSWORD", 7, PASSWORD),
    ]
    assert {f.location.kind for f in fs} == {SourceKind.IAC}
    pw = next(f for f in fs if f.location.variable == "DB_PASSWORD")
    assert pw.location.column == 19  # inside the quotes
    assert pw.rule_id == "secret-named-variable"


SAM = f"""\
AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Environment:
      Variables:
        SHARED_PASSWORD: {PASSWORD}
Resources:
  Api:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          DB_PASSWORD: !Ref DbPassword
          API_SECRET: !Sub "{{{{resolve:secretsmanager:${{Env}}/api:SecretString:key}}}}"
          QUEUE_URL: !GetAtt Queue.QueueUrl
          JOINED_TOKEN: !Join ["", ["prefix-", !Ref Suffix]]
          STRIPE_KEY: {STRIPE}
          DB_PASSWORD_2: !Sub "password=${{DbPassword}}"
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      Tags: [{{Key: DB_PASSWORD, Value: {PASSWORD}}}]
"""


def test_sam_yaml_intrinsics_are_references_literals_are_findings(engine: Engine) -> None:
    fs = findings(engine, "template.yaml", SAM)
    assert summary(fs) == [
        ("Api", "STRIPE_KEY", 18, STRIPE),
        ("Globals.Function", "SHARED_PASSWORD", 7, PASSWORD),
    ]


def test_cloudformation_json_long_form_intrinsics(engine: Engine) -> None:
    text = f"""{{
  "Resources": {{
    "Worker": {{
      "Type": "AWS::Lambda::Function",
      "Properties": {{
        "Environment": {{
          "Variables": {{
            "DB_PASSWORD": {{"Ref": "DbPassword"}},
            "API_SECRET": {{"Fn::Sub": "{{{{resolve:secretsmanager:api}}}}"}},
            "ADMIN_PASSWORD": "{PASSWORD}",
            "TOKEN_JOIN": {{"Fn::Join": ["", ["{TOKEN}"]]}}
          }}
        }}
      }}
    }}
  }}
}}
"""
    assert summary(findings(engine, "stack.json", text)) == [
        ("Worker", "ADMIN_PASSWORD", 10, PASSWORD),
        ("Worker", "TOKEN_JOIN", 11, TOKEN),
    ]


TERRAFORM = f"""\
variable "token" {{}}

resource "aws_lambda_function" "worker" {{
  function_name = "worker"
  handler       = "index.handler"
  environment {{
    variables = {{
      DB_PASSWORD  = "{PASSWORD}"
      TOKEN        = var.token
      SECRET       = data.aws_secretsmanager_secret_version.api.secret_string
      "API_KEY"    = "${{var.api_key}}"
      GH           = "{TOKEN}" # comment with }} brace
      NOTE         = "literal with ${{local.x}} inside"
    }}
  }}
}}

resource "aws_lambda_function" "merged" {{
  environment {{
    variables = merge(var.common, {{
      STRIPE_KEY = "{STRIPE}"
    }})
  }}
}}

resource "aws_s3_bucket" "b" {{
  tags = {{ DB_PASSWORD = "{PASSWORD}" }}
}}
"""


def test_terraform_lambda_environment_literals_not_references(engine: Engine) -> None:
    fs = findings(engine, "infra/main.tf", TERRAFORM)
    assert summary(fs) == [
        ("aws_lambda_function.merged", "STRIPE_KEY", 21, STRIPE),
        ("aws_lambda_function.worker", "DB_PASSWORD", 8, PASSWORD),
        ("aws_lambda_function.worker", "GH", 12, TOKEN),
    ]
    got = extract_terraform(TERRAFORM)
    assert {9, 10, 11} <= got.reference_lines


def test_reference_text() -> None:
    assert is_reference_text("${ssm:/a/${sls:stage}/b}")
    assert is_reference_text("{{resolve:secretsmanager:prod/db:SecretString:password}}")
    assert is_reference_text("arn:aws:secretsmanager:us-east-1:123456789012:secret:x")
    assert is_reference_text("${env:A}/${env:B}")
    assert not is_reference_text("prefix-${env:A}-literal")
    assert not is_reference_text(PASSWORD)


def test_classification_is_by_name_and_a_cheap_look_at_the_text() -> None:
    assert classify("a/.env", "") == "dotenv"
    assert classify("prod.env", "") == "dotenv"
    assert classify("serverless.yml", "") == "serverless"
    assert classify("t.yaml", "Type: AWS::Lambda::Function") == "cloudformation"
    assert classify("main.tf", 'resource "aws_lambda_function" "x" {}') == "terraform"
    assert classify("main.tf", 'resource "aws_s3_bucket" "x" {}') is None
    assert classify("compose.yaml", "services: {}") == "compose"
    assert classify("d.yaml", "apiVersion: v1\nenv:\n") == "kubernetes"
    assert classify("src/app.py", "DB_PASSWORD=x") is None
    assert iac_kind("README.md", "AWS::Lambda::Function") is None
    # a mention in prose is not a template; a nested `services:` is not a compose file
    prose = '{"documentation": "Creates an AWS::Lambda::Function resource"}'
    assert classify("botocore/data/service-2.json", prose) is None
    assert classify("runtime.yml", "plugins:\n  services:\n    environment: x\n") is None
    assert classify(".envrc", "export A=1") is None


def test_unparseable_template_keeps_plain_text_findings(engine: Engine) -> None:
    text = f"Resources: [unclosed\n  Type: AWS::Lambda::Function\ntoken: {TOKEN}\n"
    assert extract("cloudformation", text) is None
    fs = findings(engine, "broken.yaml", text)
    assert [f.secret for f in fs] == [TOKEN]


def test_the_same_value_found_twice_is_reported_once(engine: Engine) -> None:
    text = f"GITHUB_TOKEN={TOKEN}\n"  # the file pass and the variable pass both see it
    fs = findings(engine, ".env", text)
    assert len(fs) == 1 and fs[0].location.variable == "GITHUB_TOKEN"


# ------------------------------------------------------------------ Kubernetes Secrets
def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


PEM_LINES = [
    "-----BEGIN RSA PRIVATE KEY-----",
    "MIIEpAIBAAKCAQEAV3+bu+4PLKp+U35AkfEAa9XGFpxm2mXTlOFY4QPzq9jTyAeD",
    "0gca3TPw+VseeOcwodMZOlMmMRBL635mQjNXkLzr9Det/frVUDmJE95uUcFkm3pg",
    "6UY9IOriPiqyYhR6dx0kNb2+N+kdGoKv5KnQrchxxTJSTNMZnSh7oSv3yzXHtq9M",
    "sGxzgluwjUEfg7rhBymyYA==",
    "-----END RSA PRIVATE KEY-----",
]


def test_kubernetes_secret_data_is_decoded_and_found_at_the_key_line(engine: Engine) -> None:
    strong = "Zr8pQ2vx7LmN4tWq"
    text = f"""\
        apiVersion: v1
        kind: Secret
        metadata:
          name: app-creds
        type: Opaque
        data:
          GITHUB_TOKEN: {_b64(TOKEN)}
          DB_PASSWORD: {_b64(strong)}
          username: {_b64("admin")}
          broken: not-base64!
        stringData:
          API_TOKEN: "{TOKEN}"
        """
    found = findings(engine, "deploy/secret.yaml", text)
    assert summary(found) == [
        ("Secret/app-creds", "API_TOKEN", 12, TOKEN),
        ("Secret/app-creds", "DB_PASSWORD", 8, strong),
        ("Secret/app-creds", "GITHUB_TOKEN", 7, TOKEN),
    ]
    by_var = {f.location.variable: f for f in found}
    assert by_var["GITHUB_TOKEN"].rule_id == "github-pat-classic"
    assert by_var["GITHUB_TOKEN"].location.column == 17  # the encoded value's start
    assert by_var["API_TOKEN"].location.column == 15
    # the base64 text itself is never reported (its decoded value is judged instead)
    assert all(f.secret not in (_b64(TOKEN), _b64(strong)) for f in found)


def test_kubernetes_secret_with_a_multi_line_decoded_key(engine: Engine) -> None:
    pem = "\n".join(PEM_LINES) + "\n"
    text = f"""\
        apiVersion: v1
        kind: Secret
        metadata: {{name: tls}}
        type: kubernetes.io/tls
        data:
          tls.crt: {_b64("-----BEGIN CERTIFICATE-----")}
          tls.key: >-
            {_b64(pem)}
        """
    (f,) = findings(engine, "k8s/tls.yaml", text)
    assert (f.rule_id, f.location.variable, f.location.line, f.location.end_line) == (
        "rsa-private-key",
        "tls.key",
        7,
        7,
    )
    assert f.location.resource == "Secret/tls"


def test_a_secret_manifest_without_env_is_recognised() -> None:
    text = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\ndata:\n  a: YQ==\n"
    assert classify("k8s/secret.yml", text) == "kubernetes"
    assert classify("k8s/config.yml", text.replace("Secret", "ConfigMap")) is None
