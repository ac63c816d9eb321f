"""Fuzzing the readers of untrusted input: .env, compose, Kubernetes, serverless,
CloudFormation and Terraform files, baselines, rule files and config files.

Two properties, for every input:

* a reader returns, or raises one of keyward's own errors (one sentence, exit 2), never any
  other exception (``RecursionError``, ``UnicodeDecodeError``, ``ValueError``...);
* it runs in time linear in its input: each input shape that once took super-linear time is
  kept here as a seed, timed at two sizes 8x apart, and the growth compared with a generous
  bound (best of several runs; linear grows ~8x, quadratic ~64x), never an absolute time.

Examples are drawn from the tokens each format is made of, so they reach deep into the
parsers. CI runs a fixed, derandomized set (bounded time, no flakes);
``KEYWARD_FUZZ_EXAMPLES=5000 KEYWARD_FUZZ_RANDOM=1 pytest tests/unit/scan/test_fuzz_readers.py``
explores further (add what it finds to the seeds).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keyward.core.config import load_config
from keyward.core.errors import KeywardError
from keyward.scan.baseline import load_baseline
from keyward.scan.rules import parse_rule_file
from keyward.scan.variables import extract

FUZZ = settings(
    max_examples=int(os.environ.get("KEYWARD_FUZZ_EXAMPLES", "120")),
    deadline=None,  # time is checked by growth below, never per example
    derandomize=not os.environ.get("KEYWARD_FUZZ_RANDOM"),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

YAML = ["\n", "  ", "- ", ": ", "env:", "environment:", "name: ", "value: ", "DB_PASSWORD",
        "services:", "kind: Secret", "data:", "stringData:", "apiVersion: v1", "&a ", "*a",
        "[", "]", "{", "}", ",", '"', "'", "!Ref ", "${ssm:/x}", "Properties:", "Variables:",
        "Type: AWS::Lambda::Function", "Resources:", "functions:", "provider:", "|", ">",
        "aGVsbG8=", "hunter2-Prod-88", "#", "---", "\t", "? ", "!!binary ", "<<: *a"]  # fmt: skip
HCL = ['resource "aws_lambda_function" "f" {', "environment {", "variables = {", "}", "{",
       '"', '\\"', "${", "%{", "KEY = ", '"v4lue-x"', "\n", "  ", "#c\n", "//c\n", "/*", "*/",
       "<<EOF\n", "EOF\n", "<<-T\n", "merge(", "var.x", ",", ")", "[", "]",
       '"K" : "v"']  # fmt: skip
DOTENV = ["export ", "DB_PASSWORD", "=", ": ", '"', "'", " #", "#", "\n", "\r\n", " ",
          "{", "}", "${X}", "hunter2-", "\\", "\t"]  # fmt: skip
TOML = ["[[rules]]\n", "[rules.examples]\n", "[rules.allowlist]\n", "[scan]\n", "[inventory]\n",
        'id = "x-y"\n', 'description = "d"\n', "regex = '(?P<secret>x[a-z]{8})'\n",
        'keywords = ["x"]\n', 'positive = ["xabcdefgh"]\n', "regexes = ['(a|aa)+']\n",
        'exclude = ["!"]\n', "a = {b = {c = 1}}\n", "= ", '"', "'", "[", "]", "{", "}", "\n",
        "\\u0000", "\\", "1e999", "nan", "entropy = -1\n", "severity = 'loud'\n"]  # fmt: skip
JSON = ['{"results": {', '"a.py": [', '{"hashed_secret": "ab", "type": "T", "line_number": 1}',
        "]", "}", "[", "{", ",", ":", '"', "null", "1e999", "-0", '"\\ud800"', "true",
        '"plugins_used": [', '{"name": "X"}']  # fmt: skip


def _texts(tokens: list[str]) -> st.SearchStrategy[str]:
    piece = st.sampled_from(tokens) | st.text(max_size=6)
    return st.lists(piece, max_size=80).map("".join)


def _only_keyward_errors(fn: Callable[[], object]) -> None:
    try:
        fn()
    except KeywardError:
        pass


# --------------------------------------------------------------------- exceptions
@FUZZ
@given(text=_texts(YAML), kind=st.sampled_from(["compose", "kubernetes", "serverless",
                                                "cloudformation"]))  # fmt: skip
def test_yaml_readers_never_raise(text: str, kind: str) -> None:
    extract(kind, text)


@FUZZ
@given(text=_texts(HCL))
def test_terraform_reader_never_raises(text: str) -> None:
    extract("terraform", text)


@FUZZ
@given(text=_texts(DOTENV))
def test_dotenv_reader_never_raises(text: str) -> None:
    extract("dotenv", text)


def _in_file(data: bytes, name: str, read: Callable[[Path], object]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        _only_keyward_errors(lambda: read(path))


@FUZZ
@given(text=_texts(JSON), raw=st.binary(max_size=40))
def test_baseline_loader_raises_only_keyward_errors(text: str, raw: bytes) -> None:
    _in_file(text.encode("utf-8", "surrogatepass") + raw, ".secrets.baseline", load_baseline)


@FUZZ
@given(text=_texts(TOML), raw=st.binary(max_size=20))
def test_rule_file_loader_raises_only_keyward_errors(text: str, raw: bytes) -> None:
    _in_file(text.encode("utf-8", "surrogatepass") + raw, "rules.toml", parse_rule_file)


@FUZZ
@given(text=_texts(TOML), raw=st.binary(max_size=20))
def test_config_loader_raises_only_keyward_errors(text: str, raw: bytes) -> None:
    _in_file(text.encode("utf-8", "surrogatepass") + raw, "keyward.toml", load_config)


# The cases fuzzing the CLI found (issue 14): each raised something other than a keyward error.
@pytest.mark.parametrize(
    ("name", "data", "read"),
    [
        ("deep.baseline", b"[" * 100_000, load_baseline),
        ("deep.toml", b"a = " + b"{b = " * 5000 + b"1" + b"}" * 5000, parse_rule_file),
        ("deep-config.toml", b"a = " + b"[" * 5000, load_config),
        ("latin1.toml", b'[scan]\nexclude = ["\xff\xfe"]\n', load_config),
        ("nul.baseline", b'{"results": {"\\u0000": []}}', load_baseline),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_seed_inputs_raise_only_keyward_errors(
    name: str, data: bytes, read: Callable[[Path], object]
) -> None:
    _in_file(data, name, read)


def test_deep_interpolation_in_terraform_is_read_without_recursion() -> None:
    body = '"' + '${"' * 5000
    extract("terraform", f'resource "aws_lambda_function" "f" {{\n environment {{\n'
                         f"  variables = {{\n   K = {body}\n }}}}}}\n")  # fmt: skip


# --------------------------------------------------------------------------- time
def _best(fn: Callable[[], object], runs: int = 5) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.process_time()
        fn()
        best = min(best, time.process_time() - started)
    return best


def _assert_linear(read: Callable[[str], object], make: Callable[[int], str], n: int) -> None:
    """``read(make(8 * n))`` takes at most 40x as long as ``read(make(n))``: linear grows ~8x,
    quadratic ~64x. Measured in this process's CPU time, so other processes competing for the
    cores do not count; sizes are picked so the small run takes milliseconds; a ratio over the
    bound is measured again (three tries) before it counts."""
    small, large = make(n), make(8 * n)
    ratios = []
    for _ in range(3):
        t_small = max(_best(lambda: read(small)), 1e-3)
        t_large = _best(lambda: read(large), runs=3)
        ratios.append(t_large / t_small)
        if ratios[-1] < 40:
            return
    pytest.fail(f"8x the input took {min(ratios):.0f}x the time (best of three tries)")


# (kind, input of size n, n): shapes that once took super-linear time
GROWTH = {
    # 2,500 unclosed resources took 34 s: each rescanned the rest of the file
    "terraform-unclosed-resources": (
        "terraform",
        lambda n: 'resource "aws_lambda_function" "x" {\n' * n,
        500,
    ),
    "terraform-unclosed-environments": (
        "terraform",
        lambda n: 'resource "aws_lambda_function" "x" {\n' + " environment {\n" * n,
        500,
    ),
    "terraform-unclosed-quoted-keys": (
        "terraform",
        lambda n: (
            'resource "aws_lambda_function" "x" {\n environment {\n  variables = {\n' + '"k\n' * n
        ),
        500,
    ),
    # a 300 KB line of spaces after the value took 53 s: the comment regex backtracked
    "dotenv-long-spaces": (
        "dotenv",
        lambda n: "export DB_PASSWORD=hunter2-" + " " * n + "{}",
        20_000,
    ),
    "dotenv-many-hashes": ("dotenv", lambda n: "A=" + "x#" * n, 20_000),
    "yaml-anchors": (
        "kubernetes",
        lambda n: (
            "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n"
            + "".join(f"  - &c{i}\n    env: [{{name: A, value: b{i}}}]\n" for i in range(n))
        ),
        400,
    ),
}


@pytest.mark.parametrize("case", list(GROWTH))
def test_readers_take_linear_time_on_their_worst_known_inputs(case: str) -> None:
    kind, make, n = GROWTH[case]
    _assert_linear(lambda text: extract(kind, text), make, n)
