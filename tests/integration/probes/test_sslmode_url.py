"""The sslmode a report shows is the one the connection used, on the session's real
PostgreSQL (TLS only, the contract says verify-full): an explicit TIMESCALEDB_URL's
?sslmode= wins over the outputs file's sslmode, in what happens and in what is said."""
import json

from ..conftest import run_backbone


def url_of(local_env, sslmode: str | None) -> str:
    ts, secret = local_env["contract"]["backbone"]["timescale"], local_env["contract"]["backbone_secrets"]["timescale"]
    query = f"?sslmode={sslmode}" if sslmode else ""
    return f"postgresql://{ts['user']}:{secret['password']}@{ts['host']}:{ts['port']}/{ts['database']}{query}"


def probe(local_env, url: str):
    proc = run_backbone("probe", "--outputs", str(local_env["outputs"]), "--format", "json",
                        env={"TIMESCALEDB_URL": url})
    assert local_env["contract"]["backbone_secrets"]["timescale"]["password"] not in proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    return report, {c["name"]: c for c in report["checks"]}["timescale"]


def test_the_urls_sslmode_is_used_and_reported(local_env):
    assert local_env["contract"]["backbone"]["timescale"]["sslmode"] == "verify-full"  # what the URL overrides
    report, timescale = probe(local_env, url_of(local_env, "disable"))
    assert timescale["code"] == "refused", timescale  # plaintext, as the URL said: the server admits TLS only
    assert "requires TLS" in timescale["message"]
    assert report["manifest"]["timescale"]["sslmode"] == "disable"


def test_a_url_without_sslmode_uses_and_reports_the_contracts(local_env):
    report, timescale = probe(local_env, url_of(local_env, None))
    assert timescale["status"] == "ok", timescale  # verify-full, with the outputs file's CA
    assert report["manifest"]["timescale"]["sslmode"] == "verify-full"
