"""Checksum validators accept well-formed tokens and reject any altered one.

Every token here is a fake generated for these tests, with a correctly computed checksum.
"""

from __future__ import annotations

import base64
import zlib

import pytest

from keyward.scan.validators import (
    atlassian_crc32,
    atlassian_data_center_pat,
    azure_common_annotated_key,
    azure_devops_pat,
    azure_identifiable_key,
    azure_search_admin_key,
    azure_search_query_key,
    bech32,
    discord_user_id,
    gitlab_token,
    jwt_base64,
    kubernetes_service_account_token,
    marvin32,
    pem_private_key,
    private_key_base64,
    slack_config_token,
)

GL_V1 = "glpat-YzoxCm86MzVkcwp1OmdieXhkYVpuXrBGbgA3yJCCKA8sLxA.01.1b0wnyp3y"
GL_V0 = "glpat-YzoxCm86YnlpYwp1OjE5aHgwaQBQBc3aNvJKmn9A8An-5eEQ.1c0jmtxy2"
GLRT = "glrt-t1_YzoxCm86ODN6cQp1OjExcDQ2brdbPiI68BMouIce8KhvrJUQ.01.1c0x6d6jo"
# The minimum-length example of GitLab's routable-token design document (no prefix).
GL_DOC = "bzoxd_Rb5_cHeWe1JH56wr2FCBA.0r1pum4t4"
ATL = (
    "ATATT3xFfGF0ezQn8gHrW6BvH3FxHGe9gXbl9sE084dnTBAMiAq_bivOQUi6afyqvs_HBm1qKxRx4EzmBxldeZ76e"
    "tNHJRUAX4jTtsay5uR9iPnvt5gshw_IWZj_OmQPRV72x9WNktieVT2iTeA9CyrcnmmRzkAx8ZqfGkn6lATTVG3C6g"
    "hE28l=47F6A021"
)
ATC = (
    "ATCTT3xFfGN0MmxgySyxestFIWSVYTT6UoRf2bdaNAhqilau5M9tRUZlsTcE9oJsSLl5j_lKMbkFQbT1a-5ngGTUS"
    "2uL07n_zEzxCLZAHQqnQ9IDBFegzS_CZB2NTyfc3vF3Osl31VlpNduiYJqlzVcqYsvGWf7sukRpqE_QUy_zWHu14S"
    "RzKHJ=A0B12419"
)
ADO_USER = "5y3xh5qtlr77uuxjpxxei4rm2kzu7ubgtv6ujdobq7fgocpujoiq"
ADO_APP = "3frac6mheoikqfqh2qlldxjwkdlbvahxhu6v4u7hh5pqu5yjasla"
AGE = "AGE-SECRET-KEY-1SZ8NG2EZ4CJ3L2UTFGYGWKA56ZJ4RPRREVNSCCUXLSJMPW5JQRZS37CKWG"


def _flip_last(token: str) -> str:
    return token[:-1] + ("2" if token[-1] != "2" else "3")


@pytest.mark.parametrize("token", [GL_V1, GL_V0, GLRT, GL_DOC])
def test_gitlab_routable_token_with_matching_crc_is_valid(token: str) -> None:
    assert gitlab_token(token)


@pytest.mark.parametrize("token", [GL_V1, GL_V0, GLRT])
def test_gitlab_routable_token_with_altered_crc_or_payload_is_invalid(token: str) -> None:
    assert not gitlab_token(_flip_last(token))
    assert not gitlab_token(token[:10] + ("A" if token[10] != "A" else "B") + token[11:])


def test_gitlab_routable_token_with_wrong_length_holder_is_invalid() -> None:
    body = "glpat-" + "Yzox" * 8 + ".01.zz"  # claims a 1295-char payload; the token is shorter
    n, crc36 = zlib.crc32(body.encode()), ""
    while n:
        n, r = divmod(n, 36)
        crc36 = "0123456789abcdefghijklmnopqrstuvwxyz"[r] + crc36
    assert not gitlab_token(body + crc36.rjust(7, "0"))


def test_gitlab_classic_token_has_no_checksum_and_passes() -> None:
    assert gitlab_token("glpat-Zq7vT2nLk9Wm4Rb8Xc1D")


@pytest.mark.parametrize("token", [ATL, ATC])
def test_atlassian_token_checksum(token: str) -> None:
    assert atlassian_crc32(token)
    assert not atlassian_crc32(_flip_last(token))
    assert not atlassian_crc32(token.replace("3xFf", "3xFg", 1))


@pytest.mark.parametrize("token", [ADO_USER, ADO_APP])
def test_azure_devops_legacy_pat_checksum_for_user_and_application_seeds(token: str) -> None:
    assert azure_devops_pat(token)
    assert not azure_devops_pat(token[:20] + ("a" if token[20] != "a" else "b") + token[21:])


def test_azure_devops_pat_rejects_wrong_length_and_alphabet() -> None:
    assert not azure_devops_pat(ADO_USER[:-1])
    assert not azure_devops_pat(ADO_USER[:-1] + "1")


def test_bech32_age_secret_key_checksum() -> None:
    assert bech32(AGE)
    assert bech32(AGE.lower())
    assert not bech32(AGE[:-1] + ("Q" if AGE[-1] != "Q" else "P"))
    assert not bech32("AGE-SECRET-KEY-1" + "B" * 58)  # 'b' is not in the bech32 alphabet


def _pem(label: str, body: str, sep: str = "\n") -> str:
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return sep.join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"])


DER_BODY = "MIIBOgIBAAJBAK" + "q7Zr2Wd9Tm3Lp0Vx4Yc8Bn1Hs6Gj5Kf" * 3 + "AgMBAAECQ=="
OPENSSH_BODY = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW"


@pytest.mark.parametrize("sep", ["\n", "\r\n", "\\n"])
def test_pem_private_key_accepts_der_body_with_any_newline_style(sep: str) -> None:
    assert pem_private_key(_pem("RSA PRIVATE KEY", DER_BODY, sep))


def test_pem_private_key_checks_the_structure_its_label_names() -> None:
    assert pem_private_key(_pem("OPENSSH PRIVATE KEY", OPENSSH_BODY + "QAAAA"))
    assert not pem_private_key(_pem("OPENSSH PRIVATE KEY", DER_BODY))
    assert not pem_private_key(_pem("RSA PRIVATE KEY", OPENSSH_BODY + "QAAAA"))


def test_pem_private_key_rejects_placeholder_and_truncated_bodies() -> None:
    assert not pem_private_key(_pem("PRIVATE KEY", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC...."))
    assert not pem_private_key(_pem("PRIVATE KEY", "MIIE"))
    assert not pem_private_key("-----BEGIN PRIVATE KEY-----")


def test_pem_legacy_encrypted_key_only_needs_to_decode() -> None:
    headers = "Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,5E7A1C0D9B8F6A4E3D2C1B0A99887766\n\n"
    block = "-----BEGIN RSA PRIVATE KEY-----\n" + headers + OPENSSH_BODY + "QAAAA\n"
    assert pem_private_key(block + "-----END RSA PRIVATE KEY-----")


# --- Structure validators of the messaging/SaaS rule files (Grafana, Sentry, 1Password, Mapbox,
# Intercom, Discord). Their first tests were lost in a concurrent edit of this file; these restore
# the coverage. All values are generated fakes.

GRAFANA_SA = "glsa_ewFdoZ4rx6bT1uXXlN4J7PemVrwLbxBg_1b61d046"
GRAFANA_CLOUD = (
    "glc_eyJvIjoiODEyMzQ1IiwibiI6InN0YWNrLTgxMjM0NS1obS1yZWFkLWNpIiwiayI6ImsxeEJrMFUzalFHWm1nUm"
    "duRGdaT2VUNCIsIm0iOnsiciI6InByb2QtZXUtd2VzdC0yIn19"
)
GRAFANA_KEY = "eyJrIjoiTVdITEtRQ2RPM0FHNmpZRTZkS2tHNXd0a3dLYlNpQlciLCJuIjoiY2ktcmVhZGVyIiwiaWQiOjF9"
SENTRY = (
    "sntrys_eyJpYXQiOjE3MzEwMDAwMDAuMSwidXJsIjoiaHR0cHM6Ly9zZW50cnkuaW8iLCJyZWdpb25fdXJsIjoiaHR0"
    "cHM6Ly91cy5zZW50cnkuaW8iLCJvcmciOiJhY21lIn0_3KS89iaBBgeQ0WPEUfZh4rLOcqI9vDo33CZAgutj3T9"
)
OPS = (
    "ops_eyJzaWduSW5BZGRyZXNzIjoiYWNtZS4xcGFzc3dvcmQuY29tIiwidXNlckF1dGgiOnsibWV0aG9kIjoiU1JQZy00"
    "MDk2In0sImVtYWlsIjoiYm90QGFjbWUuaW8iLCJzcnBYIjoiSjZzdWtYbUIwWGlwTWtFRldJVjZPWllUZnBhWjB3UVpD"
    "S2lTZU5tRSJ9"
)
MAPBOX = "sk.eyJ1IjoiYWNtZS1tYXBzIiwiYSI6ImNrU25XSzR2dDdYVFlTRWRRVHo3NDAifQ.ERauXdDathhyTxWJykuzen"
INTERCOM = "dG9rOjUxMGNjMThhXzhmMmMxYTkwXzRiN2VfNGMxZF85YTNlXzVkNmY3YThiOWMwZDoxOjA"
DISCORD = "MTE4NzY1NDMyMTA5ODc2NTQzMg.hi8uPV.YYwe8wrsoSjj2lzJfFsflDbfN0FHTMFqQL2U5l"


def test_grafana_service_account_token_crc() -> None:
    from keyward.scan.validators import grafana_crc32

    assert grafana_crc32(GRAFANA_SA)
    assert not grafana_crc32(_flip_last(GRAFANA_SA))
    assert not grafana_crc32(GRAFANA_SA.replace("glsa_e", "glsa_f", 1))


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        ("grafana_cloud_token", GRAFANA_CLOUD, "glc_" + "QUJD" * 12),
        ("grafana_api_key", GRAFANA_KEY, "eyJ4IjoiMSJ9"),  # JSON without k/n
        ("sentry_org_token", SENTRY, "sntrys_eyJ4IjoiMSJ9_abc"),
        ("onepassword_service_account", OPS, "ops_eyJ4IjoiMSJ9"),  # one key only
        ("mapbox_token", MAPBOX, "sk.eyJ4IjoiMSJ9.ERauXdDathhyTxWJykuzen"),
        ("intercom_token", INTERCOM, "dXNlcjpzb21ldGhpbmc"),  # "user:something"
        ("discord_bot_token", DISCORD, "YWJjZGVmZ2hpamtsbW5vcHFy.hi8uPV.YYwe8wrsoSjj2lzJfFsflDbf"),
    ],
)
def test_structure_validators_accept_the_structure_and_reject_other_payloads(
    name: str, good: str, bad: str
) -> None:
    from keyward.scan import validators

    check = getattr(validators, name)
    assert check(good)
    assert not check(bad)


# Microsoft identifiable keys, Slack configuration tokens, Discord bot tokens, Data Center PATs
# and base64-wrapped JWTs, each generated for these tests in the provider's published layout.
AZFU = "98dwHQEX6fHwzpUIq7EVGcRaPAQH_MkEWKWfe512JhcuAzFutn66Cg=="
STORAGE = "A4B84fc/EKqK6XcRmawWg5QLRdOOEKVNe9laRD+n7jN04IeqBPGCEgFVJLV5qGAqDROWfykTjjck+AStb6yfuQ=="
SEARCH_ADMIN = "xRz0hySrTnQKakapzgotRSdM9Ngnx9V2CpBiw1l+V5AzSeB/pkQV"
SEARCH_QUERY = "C8jueN7RmOErcLvHhNBwS0Yfxy9qb8Qe8Ica1Nd8YNAzSeBZrw61"
SERVICE_BUS = "pDFYG7Ozz/YolOjxRPgn2df7uFLLyXK4E+ASbCLK4pc="
CASK = "IIDnK7J1iEtUKAqrDoFwyJ6NCbZvUN0rY7369Rio6TbUrk2J1iFwJQQJ99BAACQRaZ2kXJ3w3BAAACOGPmMC"
SLACK_ACCESS = (
    "xoxe.xoxp-1-Mi0yLTc0MzQ5NjA1NzMtODI2NDAxNzY0NjcyNi04MjQ5NTk1MzI4OTc3LTE3MTA1NzEyOTU1NDQt"
    "YTk2ODI2YWFhZTgyMzc4YjQwYzExNjRhYmQyOThmN2IyMGE3NWZmNDI0NzVjYTRlMWIyYmQxMmE3NmJjZjEwZQ"
)
SLACK_REFRESH = (
    "xoxe-1-My0xLTI0NjUyNzMwNTktNjYyMTAzMzk5ODI4Mi01MDk3NTk1NDY2NTM0LTBhODMxNmI1YTliODVlNTBkN"
    "zZlODViZGZmZmViM2M0M2ZmMzQ4NzJhYzliYzZmZWFlM2UyMjY1YTVjODY4MDU"
)
DISCORD = "NzUyMTYyMjQ5Mzg5MzI1NzE0.Hh2prn.3VwyBlkofTY541ri3yh_ofkUU0UEdta34DzIIJ"
DC_PAT = "NDY3NjM0ODU4ODcxOk3OxQbM2IAuJCVgbS2HI+xNGH2K"
JWT_B64 = (
    "ZXlKaGJHY2lPaUpJVXpJMU5pSXNJblI1Y0NJNklrcFhWQ0o5LmV5SnpkV0lpT2lKa1pUTTVNVEE1TlMwME5EVmlM"
    "VFJsTXpNdFlUSXpNQzFpTW1JMU9UbGxNR1JsT0RZaUxDSnBZWFFpT2pFM01qSTFNemc0T0Rrc0ltVjRjQ0k2TVRj"
    "eU1qVTBNalE0T1N3aWFYTnpJam9pYUhSMGNITTZMeTloZFhSb0xubHVlSEJwYXk1cGJ5SjkuS2hES2NEcHhQOEVS"
    "Uk5NbjBLSFUtWTlHSmZway16Y3pqNFVsNnpaWHVhMA=="
)


@pytest.mark.parametrize(
    ("data", "expected"),
    [("", 0x30ED35C100CD3C7D), ("af", 0x48E73FC77D75DDC1), ("e70f", 0xB5F6E1FC485DBFF8),
     ("37f495", 0xF0B07C789B8CF7E8), ("8642dc59", 0x7008F2E87E9CF556),
     ("153fb79826", 0xE6C08C6DA2AFA997), ("0932e6246c47", 0x6F04BF1A5EA24060),
     ("ab427ea8d10fc7", 0xE11847E4F0678C41)],
)  # fmt: skip
def test_marvin32_matches_the_dotnet_reference_vectors(data: str, expected: int) -> None:
    """The 64-bit results of .NET's Marvin tests (seed 0x004FB61A001BDBCC), folded to 32 bits."""
    folded = (expected >> 32) ^ (expected & 0xFFFFFFFF)
    assert marvin32(bytes.fromhex(data), 0x004FB61A001BDBCC) == folded


@pytest.mark.parametrize("key", [AZFU, STORAGE, SERVICE_BUS])
def test_azure_identifiable_key_with_matching_checksum_is_valid(key: str) -> None:
    assert azure_identifiable_key(key)


@pytest.mark.parametrize("key", [AZFU, STORAGE, SERVICE_BUS, SEARCH_ADMIN])
def test_azure_identifiable_key_with_an_altered_byte_is_invalid(key: str) -> None:
    i = 5
    altered = key[:i] + ("B" if key[i] != "B" else "C") + key[i + 1 :]
    assert not azure_identifiable_key(altered)
    assert not azure_search_admin_key(altered)


def test_azure_search_keys_tell_admin_from_query_by_their_seed() -> None:
    assert azure_search_admin_key(SEARCH_ADMIN) and not azure_search_query_key(SEARCH_ADMIN)
    assert azure_search_query_key(SEARCH_QUERY) and not azure_search_admin_key(SEARCH_QUERY)


def test_an_unknown_signature_is_not_an_identifiable_key() -> None:
    assert not azure_identifiable_key(STORAGE[:76] + "ZZZZ" + STORAGE[80:])


def test_common_annotated_key_checksum() -> None:
    assert azure_common_annotated_key(CASK)
    assert not azure_common_annotated_key(_flip_last(CASK))
    assert not azure_common_annotated_key(CASK[:10] + "Q" + CASK[11:])
    assert not azure_common_annotated_key(CASK + "A")


def test_slack_config_tokens_decode_to_their_payload() -> None:
    assert slack_config_token(SLACK_ACCESS)
    assert slack_config_token(SLACK_REFRESH)
    random_body = "xoxe-1-" + "Qk8zT2xLm4Vn7Rp1Xs5Wd9Hj3Fg6Bc0Ze2Ya8Ut4Io1Kl7Mn3Bv5Cx9" * 2
    assert not slack_config_token(random_body)


def test_discord_bot_token_carries_a_plausible_snowflake() -> None:
    assert discord_user_id(DISCORD)
    first, ts, mac = DISCORD.split(".")
    assert not discord_user_id(f"{first}.{ts}x.{mac}")  # the timestamp part is 6 characters

    def token(user_id: str) -> str:
        return base64.b64encode(user_id.encode()).decode().rstrip("=") + f".{ts}.{mac}"

    assert discord_user_id(token("752162249389325714"))
    assert not discord_user_id(token("10000000000000000"))  # timestamp bits predate Discord
    assert not discord_user_id(token("123456789012345678"))  # a documentation run of digits
    assert not discord_user_id(token("0752162249389325714"))  # leading zero


def test_data_center_pat_decodes_to_an_id_and_a_colon() -> None:
    assert atlassian_data_center_pat(DC_PAT)
    assert not atlassian_data_center_pat("N36BWLKRN5B3W/Fbt0YBDe0grrhYIvoCmNQoh+pkRuoQ")


def test_base64_of_a_jwt_is_recognised_and_base64_of_text_is_not() -> None:
    assert jwt_base64(JWT_B64)
    assert not jwt_base64("ZXlKaGJHY2lPaUpJVXpJMU5pSjkuaGVsbG8gd29ybGQ=")


K8S = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6InpHVGxrOFVWWjhJVmNmRTFKUTJkY2s5Vk5oYTBjZmRqY2hwc0hkWnZhZ0Qi"
    "fQ.eyJhdWQiOlsiaHR0cHM6Ly9rdWJlcm5ldGVzLmRlZmF1bHQuc3ZjLmNsdXN0ZXIubG9jYWwiXSwiZXhwIjoxN"
    "zY3MDI4NTc5LCJpYXQiOjE3MzU0OTI1NzksImlzcyI6Imh0dHBzOi8va3ViZXJuZXRlcy5kZWZhdWx0LnN2Yy5jb"
    "HVzdGVyLmxvY2FsIiwia3ViZXJuZXRlcy5pbyI6eyJuYW1lc3BhY2UiOiJjaSIsInNlcnZpY2VhY2NvdW50Ijp7I"
    "m5hbWUiOiJkZXBsb3llciIsInVpZCI6IjkwYjVlNTIyLTNiNzUtNDVlYS1hMjk2LTg2NjkxNDA3NTAxZCJ9fSwib"
    "mJmIjoxNzM1NDkyNTc5LCJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6Y2k6ZGVwbG95ZXIifQ.vXo5tyvWmy"
    "-N2IANijoI-vJ1D6Ag5y3Pk3Rwo51vayWLq5SrnTxZthsnWWv7VrAKUEVTPejSY1cfCgxrHBhgwILP7SAZIgcp98"
    "xWHLQJ-MmAFdSVh7DgVY-CF63RXGMOd3MPmRGx7p_RcH4dI9KsXw3NObHVBgWO-vVRyROHOd2Tj0OHZtzhn-0X2x"
    "4hzOU9O35iDJTS0TpW0HuTP6w81lUtTaIHd9YLbQcfYeFwlar56eGJ4l_o2WdM2N1tJtZQrsar7jo-kLiB197HzU"
    "UyZGAXeFO5Ki4PlsfYJ8Vs7YicwobkpAoiI54GYKymTIR7rn-hg2d1RtnZQYHkQGWczQ"
)
PEM_B64 = (
    "LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQpNSUlFcEFJQkFBS0NBUUVBbUlEYWNMTkJRbmhFZU8yK0xJ"
    "YnIrN3ppcGxxakhoYXorU2g5ZWNYWjIrMURwRVhsCjRoR3pMMlE1K3NrMllMdVVDeXRrd1B1bmsxWDBTblI3eE9Y"
    "a0NUWFF4L1VYa2NqSTA2VEF3eE9sOUR6WHFJN0MKMVdGRGxaYVJ0NWppUGVkeVdSQ3dKN3NNelJFUGQ2R0luN1Yy"
    "NGVISHNUTEdsUGhxTkRudWllRldTcEt1ZnQxcwp6UENVOWl3Q3dDNjVjblBwSWxtRERJYmxhdkF5YUc3R3Rhb08z"
    "T2N6YzBiczNHbk9VYmNScWdyM3lZa2VPNlJIClJnZTJYSVdrVWxsM0cxZGtlT3dmbjNxUXc2djVQZ2R5NFpuR1dy"
    "a2pQOVVGbTNUZmxuQW90ZzJCaTZBYXNTMHIKRUZSeWJibEl5ZXNJaG05OFQ5TXg1bW5WQkt2ZmJWT0pvZnNHek9D"
    "OHVOMi9kaXBwdFRGLzQ4UjZMUGhRMW80SQpkTlNrbnM0NjRNTHMzRHNZWTRwajJqWUtmTk9sQjVybDc4enNFcHpC"
    "ZjZHMmRZWGxJN0ZxUGJjT05oU2loRWpwClROa1M2bFZoV2xSdjJMaGFWcWsxNXNCSVAvOTBmYXlnNWNzZzhLT2Jx"
    "NGdIM0tsM09jNkhsbWdMTE9Ca3g1bHoKZm1LNjRKVzdzdEJRbEJuSUUrSHJqdzdPWDYxcGVRWXB6SjZVZk9oWm8v"
    "cS8rZmFGbHpCU1F2ZUZid08rWTZraQpUWnZOTVh5c1pRcFRGaUlUVkVrYUlrNjlaUTZrK2hxNnFxN3lJZDZBcDMy"
    "T0lqa2s5SVZheWsycWc5SnpMYjh0CmQ2RitVQndXQml4NmJKanVyL3N2bVVrc28yTUpzT0hKc1ZJVzdVNnU3YXda"
    "MTBBMUZDcTQvOGd3UEJYUjA1TnAKNTI1Q3ZBd3VGczJ0RkxiQlRNL3VoL3YzVS8wZXlkalVzL0VPMzRpSTZsRzJ1"
    "dkJSTnV1bzIxVytoN2dtRy96Sgo0VTRnQUZwY09sRVpxL1lQQlNmOStBU2p2MEE5bHpUYmlscVB0S21YM3NzSGhZ"
    "SDF5TUk4RWRLZTBKY3F2VVpFCldseVduSk5UMjFHZERpT0JlcTFucXRSMDFzUnh0SXZnU3l4QStrZzdGYkorZ1l6"
    "a0xrS0pwTEY2RXhoOHdtZFAKcjZjeHh6dW5udlhveHcwTThIWE8xd3FOVWMycEM1WjYrK2RiK2ZWcmF1YkpPblFW"
    "UnNwK1Bmb3RiYkgzWXBhcQo2Z2Q2dmNWM2gzMy8yUjdPMmp5YjRYaFJ0QytHd3Z3eG5ER3RNcjVycUNMalduZkE5"
    "STAvVjBPN1l3a2szQkFGCnpVTSsvbDJvM1hmcUF2bytIS0g3bEFOZTlxUEtPdXpxN2N2SEh3c2xjUTc0T0FlTThZ"
    "SUdaOEY2NElQR2k3K0IKa3BXNFZ1Y1FSQzVyaGdhZ2c4UVdZaUYxcnJOcnhOSFkycVhqMTFTd2lEODE1Rk5YOWYv"
    "WEtJeHNndXFMSlR4Nwo4TDdHbHBhUzBpM2dwaEpDTE5sYTV2dk9ZemQ4Wld2SVVPbDBkMGwwWVUxMVlxM2ZsL3lR"
    "OGJiclZISDV3M3ZiCi0tLS0tRU5EIFJTQSBQUklWQVRFIEtFWS0tLS0tCg=="
)
OTHER_JWT = (
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJlY2I0M2ZmMy00N2U0LTQ4ZGMtYTRhNS1hMzcxZTU"
    "yNmM1MTUiLCJpYXQiOjE3MTAwNTgwNTgsImV4cCI6MTcxMDA2MTY1OCwiaXNzIjoiaHR0cHM6Ly9hdXRoLm93dGJ"
    "wZy5pbyJ9.h9J_xxMAgmqR0Z-SOkKPk3y3C1iCEe8FGZg5_ZVNBB4"
)


def test_kubernetes_service_account_token_is_a_jwt_issued_by_kubernetes() -> None:
    assert kubernetes_service_account_token(K8S)
    assert not kubernetes_service_account_token(OTHER_JWT)


def test_base64_private_key_decodes_to_a_pem_private_key() -> None:
    assert private_key_base64(PEM_B64)
    certificate = base64.b64encode(
        b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    )
    assert not private_key_base64(certificate.decode())
