"""Reading functions for dependents discovery follows every page (moto ignores Marker, so
the pages are stubbed with botocore's Stubber)."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.stub import Stubber

from keyward.inventory.discovery.aws_lambda import read_functions

ARN = "arn:aws:lambda:eu-west-1:111111111111:function:{}"


def _conf(name: str, env: dict[str, str]) -> dict[str, Any]:
    return {"FunctionName": name, "FunctionArn": ARN.format(name),
            "Environment": {"Variables": env}}  # fmt: skip


def test_every_page_of_functions_and_aliases_is_read() -> None:
    client = boto3.client(
        "lambda", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    stub = Stubber(client)
    stub.add_response("list_functions", {"Functions": [_conf("a", {"K": "1"})],
                                         "NextMarker": "m1"}, {})  # fmt: skip
    stub.add_response("list_functions", {"Functions": [_conf("b", {"K": "2"})]}, {"Marker": "m1"})
    for name in ("a", "b"):
        stub.add_response(
            "list_tags", {"Tags": {"Stage": "Prod"} if name == "a" else {}},
            {"Resource": ARN.format(name)},
        )  # fmt: skip
        if name == "a":
            stub.add_response(
                "list_aliases",
                {"Aliases": [{"Name": "x", "FunctionVersion": "$LATEST"}], "NextMarker": "m2"},
                {"FunctionName": "a"},
            )
            stub.add_response(
                "list_aliases",
                {"Aliases": [{"Name": "live", "FunctionVersion": "3"}]},
                {"FunctionName": "a", "Marker": "m2"},
            )
            stub.add_response(
                "get_function_configuration", _conf("a", {"K": "3"}),
                {"FunctionName": "a", "Qualifier": "live"},
            )  # fmt: skip
        else:
            stub.add_response("list_aliases", {"Aliases": []}, {"FunctionName": "b"})
    with stub:
        listing = read_functions(client, "eu-west-1", lambda v: f"fp:{v}", workers=1)
    stub.assert_no_pending_responses()
    assert listing.listed and not listing.warnings and listing.account == "111111111111"
    a, b = listing.functions
    assert (a.name, a.environment, [v.fingerprint for v in a.variables]) == ("a", "prod", ["fp:1"])
    assert {k: [v.fingerprint for v in vs] for k, vs in a.aliases.items()} == {"live": ["fp:3"]}
    assert (b.name, b.aliases, b.complete) == ("b", {}, True)


def test_a_denied_listing_leaves_the_region_unlisted() -> None:
    client = boto3.client(
        "lambda", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    stub = Stubber(client)
    stub.add_client_error("list_functions", "AccessDeniedException", "no", 403)
    with stub:
        listing = read_functions(client, "eu-west-1", lambda v: v)
    assert not listing.listed and listing.functions == []
    assert listing.warnings and "denied ListFunctions" in listing.warnings[0]
