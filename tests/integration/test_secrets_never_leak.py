"""Property: whatever a password looks like and whichever route brings it in, no output
carries it, its percent-encoded or JSON-escaped forms, or any piece of it between URL
delimiters. Run against the real local services, with right and with wrong credentials
(the servers' passwords are changed to the generated one for "right").

Every piece of a generated password (between `: / @ ? # %`) holds a character no report
ever prints (`€`, `Ω`, ...), so a piece found in an output can only have come from the
password: no false alarms from words that happen to match.
"""
import contextlib
import io
import json
import os
import re
import tempfile
from pathlib import Path
from urllib.parse import quote
from xml.sax.saxutils import escape

import psycopg
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from psycopg import sql

from backbone.cli import main
from backbone.local import redis_access

from .conftest import local_environment

RARE = "€Ωßñ¿¡µ¶§ø"
DELIMITERS = ":/@?#%"
ROUTES = ("contract_parts", "contract_url", "env_url_encoded", "env_url_raw", "env_parts", "env_file", "extra")
COMMANDS = [("validate", f) for f in ("markdown", "json", "junit")] + [("probe", f) for f in ("markdown", "junit")] \
    + [("manifest", f) for f in ("markdown", "json")] + [("migrate check", f) for f in ("markdown", "json")] \
    + [("topics check", f) for f in ("markdown", "json")] + [("drill backup", "json")]
USED: list[str] = []  # every password the run tried, for the final scan of the servers' logs

piece = st.tuples(st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")), min_size=2,
                          max_size=8), st.sampled_from(RARE), st.integers(0, 8)) \
    .map(lambda t: t[0][:t[2]] + t[1] + t[0][t[2]:]) \
    .filter(lambda p: not any(d in p for d in DELIMITERS))
passwords = st.lists(st.tuples(piece, st.sampled_from(DELIMITERS)), min_size=1, max_size=4) \
    .map(lambda parts: "".join(p + d for p, d in parts) + "x€y")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    yield from local_environment(tmp_path_factory, "leaks")


def forms(password: str) -> set[str]:
    # pieces without a RARE character (only in the hand-written examples) could match any word
    pieces = [p for p in re.split(r"[:/@?#%]", password) if len(p) >= 3 and any(c in RARE for c in p)]
    out = set()
    for text in [password, *pieces]:
        out |= {text, quote(text, safe=""), quote(text), json.dumps(text)[1:-1],
                json.dumps(text, ensure_ascii=False)[1:-1], escape(text)}
    return {f for f in out if len(f) >= 3}


def set_server_passwords(env, password: str) -> None:
    c = env["contract"]
    ts, rd = c["backbone"]["timescale"], c["backbone"]["redis"]
    admin = env.setdefault("admin", {})
    if "pg" not in admin:  # sessions opened once with the original passwords stay authenticated
        admin["pg"] = psycopg.connect(host=ts["host"], port=ts["port"], dbname=ts["database"], user=ts["user"],
                                      password=c["backbone_secrets"]["timescale"]["password"], autocommit=True)
        state = json.loads((Path(env["state_dir"]) / "state.json").read_text())
        admin["redis"] = redis_access.admin_client(state, state["services"]["redis"])
    admin["pg"].execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(ts["user"]), sql.Literal(password)))
    if rd.get("tls"):  # the application's ACL user (the default user is off)
        admin["redis"].execute_command("ACL", "SETUSER", rd["username"], "resetpass", ">" + password)
    else:
        admin["redis"].config_set("requirepass", password)


def sources(env, route: str, password: str, work: Path) -> tuple[list[str], dict[str, str]]:
    """argv and environment that bring `password` in by `route` (and, for the routes that do
    not read the outputs, the CAs and Kafka's account as an operator would: files and variables)."""
    c = env["contract"]
    ts, rd, kafka = c["backbone"]["timescale"], c["backbone"]["redis"], c["backbone"]["kafka"]
    cas = {}
    for name, section in (("timescale", ts), ("redis", rd), ("kafka", kafka)):
        if section.get("ca_pem"):
            cas[name] = work / f"ca-{name}.pem"
            cas[name].write_text(section["ca_pem"])
    sslmode = "verify-full" if "timescale" in cas else "disable"
    pg_url = f"postgresql://{ts['user']}:{{}}@{ts['host']}:{ts['port']}/{ts['database']}?sslmode={sslmode}"
    redis_url = (f"rediss://{rd['username']}:{{}}@{rd['host']}:{rd['port']}/0" if rd.get("tls")
                 else f"redis://:{{}}@{rd['host']}:{rd['port']}/0")
    kafka_env = {"KAFKA_BOOTSTRAP_SERVERS": kafka["bootstrap_servers"]}
    if kafka.get("sasl_username"):
        kafka_env |= {"KAFKA_SECURITY_PROTOCOL": kafka["security_protocol"],
                      "KAFKA_SASL_MECHANISM": kafka["sasl_mechanism"], "KAFKA_SASL_USERNAME": kafka["sasl_username"],
                      "KAFKA_SASL_PASSWORD": c["backbone_secrets"]["kafka"]["sasl_password"]}
    ca_env = {k: str(cas[n]) for k, n in (("TIMESCALEDB_SSLROOTCERT", "timescale"), ("REDIS_CA_FILE", "redis"),
                                           ("KAFKA_SSL_CA_LOCATION", "kafka")) if n in cas}
    parts = {"TIMESCALEDB_HOST": ts["host"], "TIMESCALEDB_PORT": str(ts["port"]), "TIMESCALEDB_USER": ts["user"],
             "TIMESCALEDB_DATABASE": ts["database"], "TIMESCALEDB_SSLMODE": sslmode, "TIMESCALEDB_PASSWORD": password,
             "REDIS_HOST": rd["host"], "REDIS_PORT": str(rd["port"]), "REDIS_PASSWORD": password,
             **({"REDIS_USERNAME": rd["username"], "REDIS_TLS": "true"} if rd.get("tls") else {}),
             **kafka_env, **ca_env}
    if route in ("contract_parts", "contract_url"):
        secrets = json.loads(json.dumps(c["backbone_secrets"]))  # every other account stays as it was
        for name, url in (("timescale", pg_url), ("redis", redis_url)):
            secrets[name].pop("url", None)
            if route == "contract_parts":
                secrets[name]["password"] = password
            else:
                secrets[name].pop("password", None)
                secrets[name]["url"] = url.format(quote(password, safe=""))
        outputs = work / "outputs.json"
        outputs.write_text(json.dumps({"backbone": c["backbone"], "backbone_secrets": secrets}))
        return ["--outputs", str(outputs)], {}
    if route in ("env_url_encoded", "env_url_raw"):
        encode = (lambda p: quote(p, safe="")) if route == "env_url_encoded" else (lambda p: p)
        return [], {"TIMESCALEDB_URL": pg_url.format(encode(password)), "REDIS_URL": redis_url.format(encode(password)),
                    **kafka_env, **ca_env}
    if route == "env_parts":
        return [], parts
    if route == "env_file":
        dotenv = work / "backbone.env"
        quoted = {k: v.replace("\\", "\\\\").replace("'", "\\'") for k, v in parts.items()}  # dotenv's escapes
        dotenv.write_text("".join(f"{k}='{v}'\n" for k, v in quoted.items()))
        return ["--env-file", str(dotenv)], {}
    return [a for k, v in parts.items() for a in ("--extra", f"{k}={v}")], {}


@contextlib.contextmanager
def environment(values: dict[str, str]):
    saved = dict(os.environ)
    for key in [k for k in os.environ if k.startswith(("BACKBONE_", "TIMESCALEDB_", "REDIS_", "KAFKA_"))]:
        del os.environ[key]
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@settings(max_examples=70, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(password=passwords, route=st.sampled_from(ROUTES), command=st.sampled_from(COMMANDS), right=st.booleans())
@example(password="Zq7!p@ss:w/rd€", route="env_url_raw", command=("validate", "markdown"), right=True)
@example(password="Secr3t@host:w/rd99€", route="env_url_raw", command=("manifest", "json"), right=True)
@example(password="Secr3t@host:w/rd99€", route="contract_url", command=("drill backup", "json"), right=False)
def test_no_output_carries_any_form_or_piece_of_the_password(env, password, route, command, right):
    USED.append(password)
    set_server_passwords(env, password if right else "the-servers-own-" + os.urandom(6).hex())
    name, fmt = command
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        argv, values = sources(env, route, password, work)
        report = work / "report.out"
        full = [*name.split(), *argv, "--format", fmt, "--output", str(report)]
        if name in ("validate", "probe", "migrate check"):
            full += ["--timeout", "5"]
        if name == "drill backup":
            full += ["--work-dir", str(work / "dumps")]
        out, err = io.StringIO(), io.StringIO()
        with environment(values), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(full)
            except SystemExit as exc:
                code = exc.code
        texts = {"stdout": out.getvalue(), "stderr": err.getvalue(),
                 "report": report.read_text() if report.exists() else ""}
        inputs = {work / "outputs.json", work / "backbone.env"}  # what the test wrote, holding the password
        texts.update({str(p): p.read_text(errors="replace") for p in work.rglob("*") if p.is_file()
                      and p not in inputs and p.suffix in (".json", ".md", ".out", ".xml")})
    event(f"{'right' if right else 'wrong'} credentials: exit {code}")
    assert code in (0, 1, 2), texts["stderr"]
    if right and route != "env_url_raw":
        assert code != 2, texts["stderr"]  # a right password by a proper route is never bad input
    for where, text in texts.items():
        for form in forms(password):
            assert form not in text, f"{route} {name} {fmt} ({'right' if right else 'wrong'}): {where} holds {form!r}"


def test_the_servers_logs_hold_none_of_the_passwords(env):
    assert USED, "the property test ran first"
    logs = [p for p in Path(env["state_dir"]).rglob("*") if p.is_file() and p.suffix in (".log", ".json")]
    assert logs
    for path in logs:
        text = path.read_text(errors="replace")
        for password in USED:
            for form in forms(password):
                assert form not in text, f"{path.name} holds {form!r}"


def key_lines(pem: str) -> list[str]:
    """The body lines of a PEM private key: any one of them found in an output is a leak."""
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def test_no_output_carries_a_private_key(env, tmp_path):
    """The environment's own private keys (its CA's and every server's) never reach the
    contract, and a key planted where a password goes, in every route that can carry one, is
    never printed: not whole, not one line of it."""
    keys = [p.read_text() for p in Path(env["state_dir"]).rglob("*.key")]
    assert keys, "a secure environment keeps its private keys in the state directory"
    outputs_text = (Path(env["state_dir"]) / "outputs.json").read_text()
    for pem in keys:
        assert not any(line in outputs_text for line in key_lines(pem)), "outputs.json holds a private key"
    planted = keys[0]
    for route in ("contract_parts", "extra"):
        for name, fmt in (("validate", "json"), ("validate", "junit"), ("manifest", "markdown"), ("probe", "markdown")):
            argv, values = sources(env, route, planted, tmp_path)
            report = tmp_path / f"{route}-{name}.{fmt}"
            full = [name, *argv, "--format", fmt, "--output", str(report)]
            if name in ("validate", "probe"):
                full += ["--timeout", "5"]
            out, err = io.StringIO(), io.StringIO()
            with environment(values), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    main(full)
                except SystemExit:
                    pass
            texts = [out.getvalue(), err.getvalue(), report.read_text() if report.exists() else ""]
            for text in texts:
                for line in key_lines(planted):
                    assert line not in text, f"{route} {name} {fmt} printed a line of a private key"
                assert "PRIVATE KEY-----" not in text or "***" in text
