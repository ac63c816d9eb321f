"""The false-positive filters: placeholders for every rule, and what generic rules drop."""

from __future__ import annotations

import pytest

from keyward.scan import filters
from keyward.scan.rules import load_rules

GENERIC = [r for r in load_rules() if r.generic]


def verdicts(line: str, path: str = "app.py") -> list[str | None]:
    """The filter's verdict for every generic match on the line (None: kept as a finding)."""
    out: list[str | None] = []
    for rule in GENERIC:
        for m in filters.generic_matches(rule.pattern, rule.keywords, line, line.lower()):
            secret = m.group("secret")
            out.append(filters.generic_reject(secret, line, path, m.start("secret")))
    return out


def assert_dropped(line: str, path: str = "app.py", reason: str | None = None) -> None:
    found = verdicts(line, path)
    assert None not in found, f"kept a finding in {line!r}"
    if reason is not None:
        assert reason in found, f"{line!r} dropped for {found}, not {reason}"


def assert_kept(line: str, path: str = "app.py") -> None:
    assert None in verdicts(line, path), f"no finding in {line!r}: {verdicts(line, path)}"


@pytest.mark.parametrize(
    "value",
    ["changeme", "<your-key>", "xxxxxxxxxxxxxxxx", "AKIAIOSFODNN7EXAMPLE", "********", "TODO",
     "...", "your_api_key_here", "${VAR}", "$API_TOKEN", "{{ var }}", "%(password)s", "#{x}",
     "<%= x %>", "@@TOKEN@@", "0000000000", "abcdef123", "null"],
)  # fmt: skip
def test_placeholders_are_never_secrets(value: str) -> None:
    assert filters.is_placeholder(value)


@pytest.mark.parametrize(
    "value", ["Kq7#vLp2!xWz", "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", "sk_test_4eC39HqLyjWDar"]
)
def test_real_looking_values_are_not_placeholders(value: str) -> None:
    assert not filters.is_placeholder(value)


@pytest.mark.parametrize(
    "value",
    ["da2-abcdefghijklmnopqrstuvwxyz", "mlsn.0123456789abcdef0123456789abcdef", "sgp_ZYXWVUTSRQ",
     "AKIA98765432QWERTYUI"],
)  # fmt: skip
def test_an_alphabet_or_digit_run_behind_a_prefix_is_a_placeholder(value: str) -> None:
    assert filters.is_placeholder(value)


@pytest.mark.parametrize(
    "value",
    ["da2-k3vq9xw2mz7rtp4hbnc6yjd5fa", "mlsn.5f0c9e2a7b41d86e3c0f9a1b2d7e4c6f", "xk2-abcdefg9Qm"],
)
def test_short_runs_inside_a_random_token_are_kept(value: str) -> None:
    assert not filters.is_placeholder(value)


def test_a_password_like_literal_is_kept() -> None:
    assert_kept('db_password = "Kq7#vLp2!xWz"')
    assert filters.generic_reject("Kq7#vLp2!xWz", 'db_password = "Kq7#vLp2!xWz"', "a.py") is None


@pytest.mark.parametrize(
    "line",
    ['password = "changeme12"', "password: <your-password>", 'api_key = "xxxxxxxxxxxxxxxxxxxx"',
     'api_key = "AKIAIOSFODNN7EXAMPLEKEY1"', 'password = "**********"', 'token = "TODO"',
     'secret = "..."', 'api_key = "your_api_key_here"'],
)  # fmt: skip
def test_placeholder_values_are_dropped(line: str) -> None:
    assert_dropped(line)


@pytest.mark.parametrize(
    "line",
    ["password: ${DB_PASSWORD}", "password = $DB_PASSWORD", 'token = "{{ vault_api_token }}"',
     'password = "%(db_password)s"', 'secret = "#{SECRET_FROM_VAULT}"',
     'secret = "<%= ENV[\'SECRET\'] %>"', 'token = "@@DEPLOY_TOKEN@@"',
     'token = "__DEPLOY_TOKEN_VALUE__"', 'password = f"{prefix}{suffix}abc"'],
)  # fmt: skip
def test_templated_and_interpolated_values_are_dropped(line: str) -> None:
    assert_dropped(line)


@pytest.mark.parametrize(
    ("line", "path"),
    [('password = os.environ["DB_PASSWORD"]', "app.py"),
     ('password = os.getenv("DB_PASSWORD")', "app.py"),
     ("const apiKey = process.env.API_KEY_VALUE;", "app.js"),
     ('String password = System.getenv("DB_PASSWORD");', "App.java"),
     ('password = ENV["DATABASE_PASSWORD"]', "app.rb"),
     ('password = config.get("database", "password")', "app.py"),
     ("password = self.database_password", "app.py"),
     ("password = get_password_from_vault(name)", "app.py"),
     ("password = password_input", "app.py"),
     ("token = request.headers.authorization", "app.py"),
     ("this.tokenMatcher=s?Fd.tokenStructuredMatcherNoCategories:Fd.tokenStructured", "a.js")],
)  # fmt: skip
def test_code_references_are_dropped(line: str, path: str) -> None:
    assert_dropped(line, path)


@pytest.mark.parametrize(
    "path",
    ["package-lock.json", "web/yarn.lock", "pnpm-lock.yaml", "poetry.lock", "Pipfile.lock",
     "Cargo.lock", "go.sum", "composer.lock", "Gemfile.lock", "deps/flake.lock"],
)  # fmt: skip
def test_lockfiles_are_never_generic_findings(path: str) -> None:
    assert_dropped('"token": "9f2c7a1e4b8d3f6a0c5e7b2d9a4f1c8e3b6d0a7f"', path, "lockfile")


@pytest.mark.parametrize(
    "line",
    ['integrity: "sha512-Kq8Zr3Wn7Lx2Pv5Tm9Yc4Hb6Kq8Zr3Wn7Lx2Pv5Tm9Yc4Hb6=="',
     '{"token": "x", "integrity": "sha1-Kq8Zr3Wn7Lx2Pv5Tm9Yc4Hb6Kq8Z="}',
     'token_sha256 = "4f9c2a7e1b8d3f6a0c5e7b2d9a4f1c8e4f9c2a7e1b8d3f6a0c5e7b2d9a4f1c8e"',
     'secret = "3f786850e387550fdab836ed7e6dc881de23001b"  # sha1 checksum of the file'],
)  # fmt: skip
def test_hashes_and_digests_are_dropped(line: str) -> None:
    assert_dropped(line)


def test_a_hex_value_without_hash_words_is_kept() -> None:
    assert_kept('api_key = "3f786850e387550fdab836ed7e6dc881de23001b"')


@pytest.mark.parametrize(
    ("line", "reason"),
    [('auth_token = "a3f5c1e2-4b6d-4c8e-9f0a-1b2c3d4e5f60"', "uuid"),
     ('secret_file = "/run/secrets/db_password_file"', "key-names-metadata"),
     ('secret: "/run/secrets/database-credentials"', "path"),
     ('secret = "C:\\\\keys\\\\production.pem"', None),
     ('token = "https://auth.example.org/oauth/token"', None),
     ('password = "1234567890123"', None),
     ("password: true", None),
     ("password: required", None),
     ('password = "Please choose a strong password"', None),
     ('password_error: "Passwords must match"', None),
     ('password: "Passwortkontrolle fehlgeschlagen"', "prose"),
     ("password: str", None),
     ("token: Optional[str] = None", None),
     ('if password == "Kq7#vLp2!xWz":', None),
     ('if token != "Kq8Zr3Wn7Lx2Pv5Tm9Yc4Hb6":', None),
     ('password = "testpassword123"', None),
     ('test_password = "Kq7#vLp2!xWz"', "test-fixture"),
     ('fake_token = "Kq8Zr3Wn7Lx2Pv5Tm9Yc4Hb6"', "test-fixture"),
     ('TOKEN_RE = "[A-Za-z0-9_]{32,64}"', None),
     ('token_pattern = "^ghp_[A-Za-z0-9]{36}$"', None),
     ('password = "password"', None),
     ('password_field = "password_confirmation"', None),
     ('SECRET_TOKEN = "SecretTokenProvider"', None),
     ("author: Kenneth Reitz and contributors", None),
     ('tokenizer = "bert-base-uncased-whole-word"', None),
     ('("auth", "0002_alter_permission_name_max_length")', None),
     ('password = ""', None),
     ('api_key_url = "https://console.example.org/keys"', None)],
)  # fmt: skip
def test_ordinary_values_next_to_secret_words_are_dropped(line: str, reason: str | None) -> None:
    assert_dropped(line, "app.py", reason)


def test_an_unquoted_identifier_in_code_is_a_reference_but_a_literal_in_config() -> None:
    assert_dropped("api_token = Kq8Zr3Wn7Lx2Pv5", "app.py")
    assert_dropped("API_TOKEN = currentSessionToken", "app.py")
    assert_kept("API_TOKEN=Kq8Zr3Wn7Lx2Pv5Tm9Yc4Hb6", ".env")
    assert_kept("password: Kq7#vLp2!xWz", "config.yaml")


@pytest.mark.parametrize(
    "line",
    ['password = "hunter22"', 'password = "postgres"', 'password = "abc12345"',
     'token = "aaaaaaaaaaaaaaaaaaaaaaaa"', 'token = "1234567890123456789"',
     'token = "abcdefghijklmnopqrstu"'],
)  # fmt: skip
def test_weak_or_word_like_values_are_dropped(line: str) -> None:
    assert_dropped(line)


@pytest.mark.parametrize(
    "line",
    ['password = "Summer#2024"', 'password = "s3cr37-Plum-Tr33"', 'pwd = "Xk9mP2vL7qR4"',
     'token = "4f9c2a7e1b8d3f6a0c5e7b2d9a4f1c8e"', 'secret = "Kq8Zr3Wn7Lx2Pv5Tm9Yc4Hb6"'],
)  # fmt: skip
def test_strong_values_are_kept(line: str) -> None:
    assert_kept(line)


def test_basic_auth_headers_are_judged_by_the_password_inside() -> None:
    assert_dropped("'Authorization': 'Basic dXNlcjpwYXNzd2Q='")  # user:passwd
    assert_kept("'Authorization': 'Basic ZGVwbG95Okt4OSNtUDJ2TDdx'")  # deploy:Kx9#mP2vL7q


@pytest.mark.parametrize(
    "key",
    ["password", "passwd", "pwd", "DB_PASSWORD", "dbPassword", "db-password", "db.password",
     "secret", "client_secret", "stripeSecret", "token", "access_token", "auth_token", "api_key",
     "apikey", "ApiKey", "x-api-key", "private_key", "auth", "credentials", "signing_key",
     "encryption_key", "PGPASSWORD", "SECRET_KEY", "passphrase", "NEW_RELIC_API_KEY",
     "new-relic-token", "GET_RESPONSE_API_KEY"],
)  # fmt: skip
def test_secret_like_keys_in_every_case_style_are_recognised(key: str) -> None:
    assert_kept(f'{key} = "Kq8Zr3Wn7Lx2Pv5Tm9Yc4Hb6"')


@pytest.mark.parametrize(
    "key",
    ["author", "passport", "compass", "bypass_mode", "token_type", "password_hash", "secret_name",
     "auth_method", "keyboard", "monkey", "tokenizer", "is_secret", "has_password",
     "password_reset_url", "new_token", "newPassword", "get_api_key"],
)  # fmt: skip
def test_keys_that_only_mention_a_secret_word_are_not_secret_keys(key: str) -> None:
    assert_dropped(f'{key} = "Kq8Zr3Wn7Lx2Pv5Tm9Yc4Hb6"')


def test_a_value_equal_to_its_key_name_is_dropped() -> None:
    assert_dropped('API_TOKEN_VALUE = "api_token_value"', reason=None)
    assert "value-is-key-name" in verdicts('accessToken = "ACCESSTOKEN"') or not verdicts(
        'accessToken = "ACCESSTOKEN"'
    )


def test_a_pathological_line_is_rejected_quickly_without_findings() -> None:
    line = "password=" * 120_000
    found = verdicts(line, "big.txt")
    assert found
    assert None not in found


def test_xml_elements_need_their_closing_tag() -> None:
    assert_kept("<password>Kq7#vLp2!xWz</password>", "settings.xml")
    assert_dropped("if (password> Kq7#vLp2!xWz)", "a.c")


def test_netrc_entries_are_read_without_assignment_operators() -> None:
    assert_kept("machine api.example.org login deploy password Kq7#vLp2!xWz", ".netrc")
    assert_dropped("machine api.example.org login deploy password Kq7#vLp2!xWz", "notes.txt")


def test_cli_flags_need_a_dash_and_a_quoted_value_after_a_blank() -> None:
    assert_kept('psql --password "Kq7#vLp2!xWz"', "run.sh")
    assert_dropped("enter your password Kq7#vLp2!xWz now", "README.md")


CODE_AROUND_SECRET_WORDS = [
    ('SECRET_KEY = env("SECRET_KEY", default=None)', "settings.py"),
    ('DB_PASSWORD = config("DB_PASSWORD", default="changeme-in-prod")', "settings.py"),
    ('API_TOKEN = env.str("API_TOKEN", default=DEFAULT_API_TOKEN_VALUE)', "settings.py"),
    ("const TOKEN_KEY = 'auth_token';", "a.js"),
    ('localStorage.setItem("token", token);', "a.js"),
    ("password: yup.string().required(),", "a.js"),
    ("token: ${{ secrets.GITHUB_TOKEN }}", "ci.yml"),
    ("secretName: my-tls-secret-prod", "k.yaml"),
    ("password = var.db_password_value", "main.tf"),
    ('password: "{{ vault_password }}"', "site.yml"),
    ("POSTGRES_PASSWORD: postgres", "docker-compose.yml"),
    ("spring.datasource.password=${DB_PASSWORD:}", "app.properties"),
    ("'password' => env('DB_PASSWORD'),", "db.php"),
    ('Password: os.Getenv("DB_PASSWORD"),', "main.go"),
    ('Password = configuration["Db:Password"];', "A.cs"),
    ("password = getpass.getpass()", "a.py"),
    ('token = "%s:%s" % (user, pw)', "a.py"),
    ('headers["Authorization"] = f"Bearer {token}"', "a.py"),
    ("| password | string | The password of the user |", "README.md"),
    ("password VARCHAR(255) NOT NULL,", "schema.sql"),
    ("self.assertEqual(response.data['token'], token)", "t.py"),
    ("api_key=settings.STRIPE_API_KEY,", "a.py"),
    ('secret_key_base: <%= ENV["SECRET_KEY_BASE"] %>', "secrets.yml"),
    ('"password": "********"', "a.json"),
    ("AUTH_USER_MODEL = 'accounts.CustomUserModel'", "settings.py"),
    ("token_endpoint: https://oauth2.example.org/token", "a.yml"),
    ('SECRET_KEY = env("SECRET_KEY", default="unsafe-secret-key")', "settings.py"),
    (
        'password_validators = ["django.contrib.auth.password_validation.MinimumLengthValidator"]',
        "s.py",
    ),
    ("export GITHUB_TOKEN=$(cat /run/secrets/github_token)", "a.sh"),
    ("auth: { user: process.env.SMTP_USER, pass: process.env.SMTP_PASS }", "a.js"),
    ('private_key_path = "/etc/ssl/private/server.key"', "a.py"),
    ('"secretOrPrivateKey must have a value"', "a.js"),
    (
        'throw new Error("secretOrPrivateKey must be an asymmetric key when using " + header.alg)',
        "a.js",
    ),
    ("TOKEN_LENGTH = 32", "a.py"),
    ("export PASSWORD_STORE_DIR=$HOME/.password-store", "a.sh"),
    ("password: !vault |", "a.yml"),
    ("auth: basic", "a.yml"),
    ('<input type="password" name="password" value="">', "a.html"),
    ('"tokenUrl": "https://login.microsoftonline.com/common/oauth2/v2.0/token"', "a.json"),
    ('if (token === "undefined") {', "a.js"),
    ("var passwordRegex = /^(?=.*[A-Z])(?=.*\\d).{8,}$/;", "a.js"),
    ('authorization: "Bearer " + accessToken,', "a.ts"),
    ("secret = base64.b64decode(encoded_secret_value)", "a.py"),
    ("access_token = response.json()['access_token']", "a.py"),
    ("token = jwt.encode(payload, key, algorithm='HS256')", "a.py"),
]


@pytest.mark.parametrize(("line", "path"), CODE_AROUND_SECRET_WORDS)
def test_everyday_code_around_secret_words_is_not_reported(line: str, path: str) -> None:
    assert_dropped(line, path)


HARDCODED_IN_THE_WILD = [
    ('SECRET_KEY = env("SECRET_KEY", default="Kq8Zr3Wn7Lx2Pv5Tm9Yc4Hb6")', "settings.py"),
    ("password = os.getenv('DB_PASSWORD', 'Kq7#vLp2!xWz')", "settings.py"),
    ("CREATE USER app WITH PASSWORD 'Kq7#vLp2!xWz';", "init.sql"),
    ("ALTER ROLE app PASSWORD 'Kq7#vLp2!xWz'", "m.sql"),
    ('os.environ.setdefault("API_TOKEN", "Kq8Zr3Wn7Lx2Pv5Tm9Yc4Hb6")', "a.py"),
    ('props.put("password", "Kq7#vLp2!xWz");', "A.java"),
    ('curl -H "Authorization: Bearer Kq8Zr3Wn7Lx2Pv5Tm9Yc4Hb6" https://api', "a.sh"),
    ('auth: { user: "mailer", pass: "Kq7#vLp2!xWz" }', "a.js"),
    ('DATABASE_PASSWORD: "Kq7#vLp2!xWz"', "docker-compose.yml"),
    ("$config['db_password'] = \"Kq7#vLp2!xWz\";", "c.php"),
    ('set :password, "Kq7#vLp2!xWz"', "deploy.rb"),
    ('define("DB_PASSWORD", "Kq7#vLp2!xWz");', "wp-config.php"),
    ('ENV["API_TOKEN"] = "Kq8Zr3Wn7Lx2Pv5Tm9Yc4Hb6"', "a.rb"),
]


@pytest.mark.parametrize(("line", "path"), HARDCODED_IN_THE_WILD)
def test_hardcoded_secrets_in_common_idioms_are_reported(line: str, path: str) -> None:
    assert_kept(line, path)


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ('asset_token = "main.3f2a9c8e1b4d7f6a0c5e.css"', "main.3f2a9c8e1b4d7f6a0c5e.css"),
        ('"api_key": "a06b-c462cffae87a"', "a06b-c462cffae87a"),
        ('header = {"Authorization": "X-Amz-S3Session-Token"}', "X-Amz-S3Session-Token"),
        ("token_cache_key = 'f395038c92f1828cbb3991d2d6152d326b895606'",
         "f395038c92f1828cbb3991d2d6152d326b895606"),
        ('"publicToken": "Zq8Kp3Wn7Lx2Rv5Tm9Yc4Hb6Zq8Kp3Wn"', "Zq8Kp3Wn7Lx2Rv5Tm9Yc4Hb6Zq8Kp3Wn"),
        ('<input name="authenticity_token" value="Zq8Kp3Wn7Lx2Rv5Tm9Yc4Hb6Zq8Kp3Wn">',
         "Zq8Kp3Wn7Lx2Rv5Tm9Yc4Hb6Zq8Kp3Wn"),
        ('"VerificationToken": "QTKknzFg2J4ygwa+XvHAxUl1hyHoY0gVfZdfjIedHZ0="',
         "QTKknzFg2J4ygwa+XvHAxUl1hyHoY0gVfZdfjIedHZ0="),
    ],
)  # fmt: skip
def test_names_ids_assets_and_public_values_are_not_generic_secrets(line: str, value: str) -> None:
    assert filters.generic_reject(value, line, "web/app.py") is not None


def test_a_member_path_of_plain_identifiers_is_code() -> None:
    line = "  ObjSense pass_sense = ObjSense::kMinimize;"
    assert filters.generic_reject("ObjSense::kMinimize", line, "src/solver.cpp") == "code-reference"
