"""Generic secret detection through the engine: what is found in each language and format."""

from __future__ import annotations

import pytest

from keyward.core.redaction import Fingerprinter
from keyward.scan.engine import Engine, hyperscan_available
from keyward.scan.model import Chunk, Finding, Location
from keyward.scan.rules import RuleSet, load_rules

RULES = load_rules()
GENERIC = RuleSet(tuple(r for r in RULES if r.generic))
BACKENDS = ["re", "hyperscan"] if hyperscan_available() else ["re"]
FP = Fingerprinter(b"generic-tests-key-0123456789")


@pytest.fixture(scope="module", params=BACKENDS)
def engine(request: pytest.FixtureRequest) -> Engine:
    return Engine(GENERIC, FP, backend=request.param)


@pytest.fixture(scope="module")
def engines() -> list[Engine]:
    return [Engine(GENERIC, FP, backend=b) for b in BACKENDS]


def scan(engine: Engine, text: str, path: str) -> list[Finding]:
    return [f for f in engine.scan(Chunk(text, Location(path=path))) if f.suppressed_by is None]


# (path, line of code, rule id, the secret) - values are random, written for these tests.
FOUND = [
    ("app.py", 'DB_PASSWORD = "Kq7#vLp2!xWz"', "generic-password", "Kq7#vLp2!xWz"),
    (
        "settings.py",
        'DATABASES = {"default": {"PASSWORD": "Vb8@kLq3#nPz"}}',
        "generic-password",
        "Vb8@kLq3#nPz",
    ),
    (
        "db.py",
        'engine = connect(user="app", password="hT5!mRw9Zq2e")',
        "generic-password",
        "hT5!mRw9Zq2e",
    ),
    (
        "client.py",
        'stripe_secret: str = "r9Qk2Lz7Wx4Np8Vm3Tc6Hb5Yq1"',
        "generic-secret",
        "r9Qk2Lz7Wx4Np8Vm3Tc6Hb5Yq1",
    ),
    (
        "client.js",
        'const config = { secret: "Nx2Kw8Lq5Zr9Pv3Tm7Hc4Yb6" };',
        "generic-secret",
        "Nx2Kw8Lq5Zr9Pv3Tm7Hc4Yb6",
    ),
    (
        "api.ts",
        "private readonly clientSecret: string = 'Kq8Zr3Wn7Lx2Pv5Tm9Yc4Hb6';",
        "generic-secret",
        "Kq8Zr3Wn7Lx2Pv5Tm9Yc4Hb6",
    ),
    (
        "main.go",
        'token := "Pm4Zq8Kw2Lr6Xn9Vt3Hc7Yb5"',
        "generic-secret",
        "Pm4Zq8Kw2Lr6Xn9Vt3Hc7Yb5",
    ),
    ("conf.go", '\tcfg := Config{Password: "Zc5%qWm8Rt1y"}', "generic-password", "Zc5%qWm8Rt1y"),
    (
        "Db.java",
        '@DataSourceDefinition(name = "db", password = "Hx3!kQw8Zp2m")',
        "generic-password",
        "Hx3!kQw8Zp2m",
    ),
    (
        "Keys.kt",
        'val apiKey = "Rt6Kq2Zw9Lm4Xp8Vn3Hy7Cb5"',
        "generic-api-key",
        "Rt6Kq2Zw9Lm4Xp8Vn3Hy7Cb5",
    ),
    (
        "config.rb",
        'config.secret_token = "Lw5Kq9Zr3Xn7Pm2Vt8Hc4Yb6"',
        "generic-secret",
        "Lw5Kq9Zr3Xn7Pm2Vt8Hc4Yb6",
    ),
    ("db.rb", '  :password => "Dq9#zLm4Vx7p",', "generic-password", "Dq9#zLm4Vx7p"),
    ("index.php", "$password = 'Tk8@rWq5Zn3m';", "generic-password", "Tk8@rWq5Zn3m"),
    (
        "conf.php",
        "    'api_key' => 'Wz3Kq7Lp2Rx9Nm5Vt8Hc4Yb6',",
        "generic-api-key",
        "Wz3Kq7Lp2Rx9Nm5Vt8Hc4Yb6",
    ),
    (
        "deploy.sh",
        "export API_TOKEN=Zw5Kq9Lr2Xp7Nm4Vt8Hc3Yb6",
        "generic-secret",
        "Zw5Kq9Lr2Xp7Nm4Vt8Hc3Yb6",
    ),
    (
        "deploy.sh",
        "mysqldump --password=Bq2!wRt6Zk9p app > dump.sql",
        "generic-password",
        "Bq2!wRt6Zk9p",
    ),
    ("backup.sh", "mysql -uroot -p'Fz8#nQw2Kp6t' app", "generic-password", "Fz8#nQw2Kp6t"),
    (
        "Program.cs",
        'var client = new Client(apiKey: "Qx7Rn2Kw9Lp4Zv6Tm3Hc8Bd5");',
        "generic-api-key",
        "Qx7Rn2Kw9Lp4Zv6Tm3Hc8Bd5",
    ),
    (
        "Program.cs",
        'string connectionString = "Server=db;User Id=app;Password=Nq8#zWk3Lp6r;";',
        "generic-password",
        "Nq8#zWk3Lp6r",
    ),
    ("config.yml", "  password: Wm3!zKq7Rx5n", "generic-password", "Wm3!zKq7Rx5n"),
    (
        "config.yaml",
        "auth_token: 'Hk9Zq3Lw7Xr2Nm5Vp8Tc4Yb6'",
        "generic-secret",
        "Hk9Zq3Lw7Xr2Nm5Vp8Tc4Yb6",
    ),
    (
        "config.json",
        '{"apiKey": "Qx7Rn2Kw9Lp4Zv6Tm3Hc8Bd5"}',
        "generic-api-key",
        "Qx7Rn2Kw9Lp4Zv6Tm3Hc8Bd5",
    ),
    ("app.ini", "db.password = Qv6@pLz2Nw9k", "generic-password", "Qv6@pLz2Nw9k"),
    (
        "application.properties",
        "spring.datasource.password=Qv6@pLz2Nw9k",
        "generic-password",
        "Qv6@pLz2Nw9k",
    ),
    (
        "config.toml",
        'token = "Lq7Zk3Wr9Xn2Pm5Vt8Hc4Yb6"',
        "generic-secret",
        "Lq7Zk3Wr9Xn2Pm5Vt8Hc4Yb6",
    ),
    (
        "web.config",
        '<add key="ApiKey" value="Lm5Qz9Rk2Wx7Np4Tv8Hc3Yb6" />',
        "generic-api-key",
        "Lm5Qz9Rk2Wx7Np4Tv8Hc3Yb6",
    ),
    ("settings.xml", "<password>Pz5#kWn8Qr2v</password>", "generic-password", "Pz5#kWn8Qr2v"),
    (
        ".env",
        "STRIPE_SECRET=Nx2Kw8Lq5Zr9Pv3Tm7Hc4Yb6",
        "generic-secret",
        "Nx2Kw8Lq5Zr9Pv3Tm7Hc4Yb6",
    ),
    (".env", "DB_PASSWORD=Kr9!wZq4Lm7x", "generic-password", "Kr9!wZq4Lm7x"),
    (
        "client.py",
        'headers = {"Authorization": "Bearer Tz6Kq2Wr8Lx4Nm9Vp3Hc7Yb5"}',
        "generic-secret",
        "Tz6Kq2Wr8Lx4Nm9Vp3Hc7Yb5",
    ),
    (
        "keys.py",
        'signing_key = "4f9c2a7e1b8d3f6a0c5e7b2d9a4f1c8e"',
        "generic-secret",
        "4f9c2a7e1b8d3f6a0c5e7b2d9a4f1c8e",
    ),
]


@pytest.mark.parametrize(("path", "line", "rule", "secret"), FOUND, ids=[c[0] for c in FOUND])
def test_generic_secret_is_found_in_each_language_and_format(
    engine: Engine, path: str, line: str, rule: str, secret: str
) -> None:
    text = f"# first line\n{line}\n# last line\n"
    findings = scan(engine, text, path)
    assert [(f.rule_id, f.secret, f.location.line) for f in findings] == [(rule, secret, 2)]
    assert findings[0].location.column == line.index(secret) + 1


# Assignments whose operator or layout the one-line forms above do not show: (path, text,
# rule, secret, line of the secret).
MORE_FORMS = [
    ("main.go", 'var apiToken string = "Qw7Zr2Kx9Lm4Np8Vt3Hc6Yb5"\n', "generic-secret",
     "Qw7Zr2Kx9Lm4Np8Vt3Hc6Yb5", 1),
    ("client.php", '$authToken .= "Ht4Kq9Wz2Lr7Nx5Vp8Mc3Yb6";\n', "generic-secret",
     "Ht4Kq9Wz2Lr7Nx5Vp8Mc3Yb6", 1),
    ("Makefile", 'DEPLOY_TOKEN ::= "Zm8Rq3Kw6Lx2Np9Vt5Hc7Yb4"\n', "generic-secret",
     "Zm8Rq3Kw6Lx2Np9Vt5Hc7Yb4", 1),
    ("values.yaml", "registry:\n  auth_token: |\n    Nk5Wq8Zr3Lx7Tp2Vm9Hc4Yb6\n", "generic-secret",
     "Nk5Wq8Zr3Lx7Tp2Vm9Hc4Yb6", 3),
    ("settings.xml", "<server>\n  <password>\n    Pz5#kWn8Qr2v\n  </password>\n</server>\n",
     "generic-password", "Pz5#kWn8Qr2v", 3),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "text", "rule", "secret", "line"), MORE_FORMS, ids=[c[0] for c in MORE_FORMS]
)
def test_generic_secret_is_found_after_typed_compound_and_multi_line_assignments(
    engine: Engine, path: str, text: str, rule: str, secret: str, line: int
) -> None:
    findings = scan(engine, text, path)
    assert [(f.rule_id, f.secret, f.location.line) for f in findings] == [(rule, secret, line)]


def test_a_value_on_the_next_line_needs_a_block_scalar_or_an_element_and_to_stand_alone(
    engine: Engine,
) -> None:
    text = (
        "if token >\n    Qw7Zr2Kx9Lm4Np8Vt3Hc6Yb5\n"  # a comparison, not an element
        "auth_token: |\n  Nk5Wq8Zr3Lx7Tp2Vm9Hc4Yb6 is what the docs show\n"  # prose
        "auth_token:\n  Nk5Wq8Zr3Lx7Tp2Vm9Hc4Yb6\n"  # a YAML key with no block scalar
    )
    assert scan(engine, text, "notes.yaml") == []


ORDINARY_CODE = {
    "auth/views.py": """
from django.conf import settings

def login(request, password=None):
    password = request.POST.get("password")
    token = request.headers.get("Authorization", "")
    if password == settings.ADMIN_PASSWORD:
        return make_token(user, token_type="Bearer")
    api_key: Optional[str] = None
    secret_name = "prod/database/credentials"
    PASSWORD_MIN_LENGTH = 12
    password_field = forms.CharField(widget=forms.PasswordInput, label=_("Password"))
    author = "Kenneth Reitz"
    tokenizer = "bert-base-uncased"
    auth = ("user", password)
    SECRET_KEY = os.environ["SECRET_KEY"]
    token_url = "https://oauth2.googleapis.com/token"
    help_text = "Your password can't be too similar to your other personal information."
""",
    "src/client.js": """
const apiKey = process.env.API_KEY;
const token = await getToken({ scope: "read" });
export const secret = config.get('secret');
if (password !== confirmPassword) throw new Error("Passwords do not match");
const headers = { Authorization: `Bearer ${token}` };
""",
    "deploy/values.yaml": """
postgresql:
  auth:
    password: ${POSTGRES_PASSWORD}
    existingSecret: postgres-credentials
    secretKeys:
      adminPasswordKey: postgres-password
  token: "{{ .Values.token }}"
  passwordSecretRef: db-password-secret
""",
    "package-lock.json": """
{"node_modules/left-pad": {"version": "1.3.0",
 "resolved": "https://registry.npmjs.org/left-pad/-/left-pad-1.3.0.tgz",
 "integrity": "sha512-XI5MPzVNApjAyhQzphX8BkmKsKUxD4LdyK24iZeQNJlwI+Ijq3iEFZI3Pa1x1kpbnpYRJI",
 "token": "9f2c7a1e4b8d3f6a0c5e7b2d9a4f1c8e3b6d0a7f"}}
""",
}


@pytest.mark.parametrize("path", list(ORDINARY_CODE))
def test_ordinary_code_yields_no_generic_findings(engine: Engine, path: str) -> None:
    assert scan(engine, ORDINARY_CODE[path], path) == []


def test_a_one_megabyte_line_of_password_assignments_is_scanned_without_findings(
    engine: Engine,
) -> None:
    text = "password=" * 120_000
    assert scan(engine, text, "big.txt") == []


def test_a_secret_in_the_middle_of_a_one_megabyte_line_is_found(engine: Engine) -> None:
    filler = "x = 1; " * 75_000
    text = filler + 'password = "Kq7#vLp2!xWz"; ' + filler
    findings = scan(engine, text, "big.js")
    assert [(f.rule_id, f.secret, f.location.column) for f in findings] == [
        ("generic-password", "Kq7#vLp2!xWz", len(filler) + 13)
    ]


def test_both_engines_find_the_same_generic_secrets(engines: list[Engine]) -> None:
    text = "\n".join(line for _, line, _, _ in FOUND) + "\n" + "\n".join(ORDINARY_CODE.values())
    results = [
        [(f.rule_id, f.location.line, f.location.column, f.fingerprint) for f in scan(e, text, "x")]
        for e in engines
    ]
    assert len(results[0]) >= 20
    assert all(r == results[0] for r in results)


def test_generic_findings_never_show_the_raw_value(engine: Engine) -> None:
    (finding,) = scan(engine, 'client_secret = "Kq8Zr3Wn7Lx2Pv5Tm9Yc4Hb6"', "app.py")
    assert "Kq8Zr3Wn7Lx2Pv5Tm9Yc4Hb6" not in finding.preview
    assert "Kq8Zr3Wn7Lx2Pv5Tm9Yc4Hb6" not in repr(finding)
    assert finding.fingerprint == FP.fingerprint("Kq8Zr3Wn7Lx2Pv5Tm9Yc4Hb6")


def test_an_inline_allow_comment_silences_a_generic_finding(engine: Engine) -> None:
    text = 'password = "Kq7#vLp2!xWz"  # keyward: allow\n'
    (finding,) = engine.scan(Chunk(text, Location(path="app.py")))
    assert finding.suppressed_by == "inline"


def test_provider_rules_win_over_generic_ones_on_the_same_value() -> None:
    aws_and_generic = RuleSet(tuple(r for r in RULES if r.generic or r.id.startswith("aws-")))
    engine = Engine(aws_and_generic, FP, backend=BACKENDS[-1])
    text = 'aws_secret_access_key = "Tq8vR2mLw9Zk4/PdX7nB3sYhJ1cFgE6aUoI0tWeQ"\n'
    findings = scan(engine, text, "app.py")
    assert [f.rule_id for f in findings] == ["aws-secret-access-key"]
