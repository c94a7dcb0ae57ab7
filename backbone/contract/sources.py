"""Configuration sources and their precedence.

defaults -> outputs (--outputs FILE | --stack NAME) -> environment -> --env-file -> --extra.
Each later source overrides single settings of the earlier ones. Settings are named by
the keys in `SETTINGS` (environment-variable style); each maps to one contract field.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from dotenv import dotenv_values
from pydantic import ValidationError

from ..errors import ConfigError
from .model import CONTRACT_VERSION, Contract, null_sections
from .outputs import ContractError, merge_outputs


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true/false, got {raw!r}")


def _int(raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError(f"expected an integer, got {raw!r}") from None


def _float(raw: str) -> float:
    try:
        return float(raw.strip())
    except ValueError:
        raise ValueError(f"expected a number, got {raw!r}") from None


def _ca_file(raw: str) -> str:
    """A CA bundle named by its file (what operators pass to libpq, redis-cli, librdkafka):
    the contract carries the PEM text itself."""
    path = Path(raw.strip()).expanduser()
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = "no such file" if isinstance(exc, FileNotFoundError) else "cannot be read as text"
        raise ValueError(f"the CA file {str(path)!r}: {reason}") from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ValueError(f"the CA file {str(path)!r} holds no PEM certificate") from None
    return text


@dataclass(frozen=True)
class Setting:
    path: str  # dotted contract path
    parse: Callable[[str], Any] = str
    aliases: tuple[str, ...] = ()  # the seeds' names, accepted as well


# Canonical names are BACKBONE_*; aliases keep the names operators already use.
SETTINGS: dict[str, Setting] = {
    "BACKBONE_ENVIRONMENT": Setting("environment"),
    "BACKBONE_TIER": Setting("tier"),
    "BACKBONE_PLATFORM": Setting("platform"),
    "BACKBONE_BOOTSTRAP_STORE": Setting("bootstrap.store"),
    "BACKBONE_TIMESCALE_URL": Setting("timescale.url", aliases=("TIMESCALEDB_URL",)),
    "BACKBONE_TIMESCALE_HOST": Setting("timescale.host", aliases=("TIMESCALEDB_HOST",)),
    "BACKBONE_TIMESCALE_PORT": Setting("timescale.port", _int, ("TIMESCALEDB_PORT",)),
    "BACKBONE_TIMESCALE_DATABASE": Setting("timescale.database", aliases=("TIMESCALEDB_DATABASE", "TIMESCALEDB_DB")),
    "BACKBONE_TIMESCALE_USER": Setting("timescale.user", aliases=("TIMESCALEDB_USER",)),
    "BACKBONE_TIMESCALE_PASSWORD": Setting("timescale.password", aliases=("TIMESCALEDB_PASSWORD",)),
    "BACKBONE_TIMESCALE_SSLMODE": Setting("timescale.sslmode", aliases=("TIMESCALEDB_SSLMODE",)),
    "BACKBONE_TIMESCALE_CA_FILE": Setting("timescale.ca_pem", _ca_file, ("TIMESCALEDB_SSLROOTCERT", "PGSSLROOTCERT")),
    "BACKBONE_TIMESCALE_REQUIRE_TIMESCALEDB": Setting("timescale.require_timescaledb", _bool),
    "BACKBONE_TIMESCALE_POOL_SIZE": Setting("timescale.pool.size", _int, ("TIMESCALEDB_POOL_SIZE",)),
    "BACKBONE_TIMESCALE_MAX_OVERFLOW": Setting("timescale.pool.max_overflow", _int, ("TIMESCALEDB_MAX_OVERFLOW",)),
    "BACKBONE_TIMESCALE_POOL_TIMEOUT": Setting("timescale.pool.timeout_s", _float, ("TIMESCALEDB_POOL_TIMEOUT",)),
    "BACKBONE_TIMESCALE_POOL_RECYCLE": Setting("timescale.pool.recycle_s", _int, ("TIMESCALEDB_POOL_RECYCLE",)),
    "BACKBONE_TIMESCALE_POOL_PRE_PING": Setting("timescale.pool.pre_ping", _bool, ("TIMESCALEDB_POOL_PRE_PING",)),
    "BACKBONE_REDIS_URL": Setting("redis.url", aliases=("REDIS_URL",)),
    "BACKBONE_REDIS_HOST": Setting("redis.host", aliases=("REDIS_HOST",)),
    "BACKBONE_REDIS_PORT": Setting("redis.port", _int, ("REDIS_PORT",)),
    "BACKBONE_REDIS_USERNAME": Setting("redis.username", aliases=("REDIS_USERNAME",)),
    "BACKBONE_REDIS_PASSWORD": Setting("redis.password", aliases=("REDIS_PASSWORD",)),
    "BACKBONE_REDIS_TLS": Setting("redis.tls", _bool, ("REDIS_SSL", "REDIS_TLS")),
    "BACKBONE_REDIS_CA_FILE": Setting("redis.ca_pem", _ca_file, ("REDIS_CA_FILE",)),
    "BACKBONE_REDIS_DB": Setting("redis.db", _int, ("REDIS_DB",)),
    "BACKBONE_KAFKA_BOOTSTRAP_SERVERS": Setting("kafka.bootstrap_servers", aliases=("KAFKA_BOOTSTRAP_SERVERS",)),
    "BACKBONE_KAFKA_EXPECTED_BROKERS": Setting("kafka.expected_brokers", _int),
    "BACKBONE_KAFKA_SECURITY_PROTOCOL": Setting("kafka.security_protocol", aliases=("KAFKA_SECURITY_PROTOCOL",)),
    "BACKBONE_KAFKA_SASL_MECHANISM": Setting("kafka.sasl_mechanism", aliases=("KAFKA_SASL_MECHANISM",)),
    "BACKBONE_KAFKA_SASL_USERNAME": Setting("kafka.sasl_username", aliases=("KAFKA_SASL_USERNAME",)),
    "BACKBONE_KAFKA_SASL_PASSWORD": Setting("kafka.sasl_password", aliases=("KAFKA_SASL_PASSWORD",)),
    "BACKBONE_KAFKA_CA_FILE": Setting("kafka.ca_pem", _ca_file, ("KAFKA_SSL_CA_LOCATION",)),
}
_BY_NAME: dict[str, str] = {n: n for n in SETTINGS} | {a: n for n, s in SETTINGS.items() for a in s.aliases}
# BACKBONE_* variables that configure the tool itself rather than the contract.
TOOL_VARIABLES = {"BACKBONE_STATE_DIR", "BACKBONE_KAFKA_LIBS", "BACKBONE_PG_BIN"}
SERVICE_SECTIONS = ("timescale", "redis", "kafka")




@dataclass
class Sources:
    outputs: Path | None = None
    stack: str | None = None
    env_file: Path | None = None
    extras: tuple[str, ...] = ()
    environ: Mapping[str, str] | None = None  # None = os.environ


def load_contract(src: Sources) -> Contract:
    """Resolve every source into one validated contract, or raise ConfigError."""
    document: dict[str, Any] = {}
    if src.outputs is not None and src.stack is not None:
        raise ConfigError("--outputs and --stack are alternatives; give one")
    if src.outputs is not None:
        document = _read_outputs_file(src.outputs)
    elif src.stack is not None:
        document = _read_stack(src.stack)

    explicit_tier = "tier" in document
    provenance: dict[str, str] = {}  # contract path -> "KEY (from origin)", for error messages
    layers = [("environment", _from_environment(os.environ if src.environ is None else src.environ))]
    if src.env_file is not None:
        layers.append((f"--env-file {src.env_file}", _from_env_file(src.env_file)))
    layers.append(("--extra", _from_extras(src.extras)))

    for origin, overrides in layers:
        for key, raw in overrides.items():
            setting = SETTINGS[_BY_NAME[key]]
            try:
                value = setting.parse(raw)
            except ValueError as exc:
                raise ConfigError(f"{key} (from {origin}): {exc}") from None
            _set(document, setting.path, value)
            provenance[setting.path] = f"{key} from {origin}"
            explicit_tier = explicit_tier or setting.path == "tier"

    if (src.outputs is not None or src.stack is not None) and "contract_version" not in document:
        origin = f"--outputs {src.outputs}" if src.outputs is not None else f"--stack {src.stack}"
        raise ConfigError(f"contract_version (from {origin}): required field is missing; a contract states its "
                          f"version (this backbone reads version {CONTRACT_VERSION})")
    # Service settings without an explicit tier mean the operator wants the services.
    if not explicit_tier and any(s in document for s in SERVICE_SECTIONS):
        document["tier"] = "institutional"
        document.setdefault("platform", "local")
    return _validate(document, provenance)


def _validate(document: dict[str, Any], provenance: dict[str, str] | None = None) -> Contract:
    for section in null_sections(document):
        raise ConfigError(f"{section}: the section is null; leave it out, or give its settings")
    try:
        return Contract.model_validate(document)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "contract"
        message = err["msg"].removeprefix("Value error, ")
        more = f" (and {len(exc.errors()) - 1} more problem(s))" if len(exc.errors()) > 1 else ""
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        elif err["type"] == "missing":
            message = "required field is missing"
        origin = (provenance or {}).get(field)
        where = f" (set by {origin})" if origin else ""
        raise ConfigError(f"{field}{where}: {message}{more}") from None


def _set(document: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = document
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[leaf] = value


def _read_outputs_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"--outputs {path}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"--outputs {path}: cannot read ({exc.strerror})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--outputs {path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    return _merge(data, f"--outputs {path}")


def _read_stack(stack: str) -> dict[str, Any]:
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        raise ConfigError(f"--stack {stack}: the pulumi CLI is not on PATH; install it, or export the outputs "
                          "with `pulumi stack output --json --show-secrets > outputs.json` elsewhere and pass --outputs")
    try:
        proc = subprocess.run([pulumi, "stack", "output", "--json", "--show-secrets", "--stack", stack],
                              capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        raise ConfigError(f"--stack {stack}: `pulumi stack output` did not answer within 120 s") from None
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise ConfigError(f"--stack {stack}: `pulumi stack output` failed: {detail}")
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise ConfigError(f"--stack {stack}: `pulumi stack output` did not print JSON") from None
    return _merge(data, f"--stack {stack}")


def _merge(data: Any, origin: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a JSON object, got {type(data).__name__}")
    try:
        return merge_outputs(data)
    except ContractError as exc:
        raise ConfigError(f"{origin}: {exc}") from None


def _from_environment(environ: Mapping[str, str]) -> dict[str, str]:
    keys = [k for k in environ if k in _BY_NAME and environ[k] != ""]
    return _one_per_setting({k: environ[k] for k in keys})


def _from_env_file(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise ConfigError(f"--env-file {path}: file not found")
    # read only (nothing is exported to os.environ) and literally: no ${VAR} expansion, which
    # would silently change a password containing '${'
    values = dotenv_values(path, interpolate=False)
    for key, value in values.items():
        if key not in _BY_NAME and key not in TOOL_VARIABLES:
            raise ConfigError(f"--env-file {path}: unknown setting {key!r}")
        if value is None:
            raise ConfigError(f"--env-file {path}: {key} has no value")
    return _one_per_setting({k: v for k, v in values.items() if k in _BY_NAME})


def _from_extras(extras: tuple[str, ...]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in extras:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--extra {key or item!r}: expected KEY=VALUE")
        if key not in _BY_NAME:
            raise ConfigError(f"--extra {key}: unknown setting (see docs/contract.md for the list)")
        pairs[key] = value
    return _one_per_setting(pairs)


def _one_per_setting(pairs: dict[str, str]) -> dict[str, str]:
    """Keep one key per setting, as the user spelled it; within one source the canonical
    BACKBONE_* name beats an alias."""
    chosen: dict[str, str] = {}
    for key in sorted(pairs, key=lambda k: _BY_NAME[k] == k):
        chosen[_BY_NAME[key]] = key
    return {key: pairs[key] for key in chosen.values()}
