"""The outputs contract: one versioned document describing an environment.

Pulumi exports it as two stack outputs, ``backbone`` (redaction-safe) and
``backbone_secrets`` (credentials only); `backbone local up` writes the same pair.
`outputs.merge_outputs` joins them, `Contract` validates the result, `manifest()` gives the
redaction-safe view back.
"""
from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, quote, unquote, urlsplit, urlunsplit

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, StrictBool, field_validator,
                      model_validator)

from .checks import (Count, Host, Identifier, Name, Port, Seconds, check_host, no_bool, parse_service_url,
                     split_host_port)

CONTRACT_VERSION = 1
TIERS = ("bootstrap", "institutional")
PLATFORMS = ("embedded", "local", "docker", "kubernetes")

# Which fields of the contract are secrets. `split_secrets` and `merge_outputs` use this
# table, so the two stack outputs can never disagree about where a credential lives.
# A field of a map of credentials is named "map.*.field" (each duty's password).
SECRET_FIELDS: dict[str, tuple[str, ...]] = {
    "timescale": ("password", "url", "roles.*.password"),
    "redis": ("password", "url", "sentinel_password"),
    "kafka": ("sasl_password", "principals.*.password"),
}

_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_CONFIG_KEY = re.compile(r"^[a-z][a-z0-9._-]*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class HostPort(_Model):
    host: Host
    port: Port

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


class Credential(_Model):
    """A user of a service and its password: the account one duty connects as."""

    user: str = Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9_.@=-]+$")
    password: SecretStr | None = None


# What each duty may do on PostgreSQL (docs/security.md): the contract's own user reads and
# writes; "owner" owns the schema (migrations, the tier switch's triggers); "reader" only
# reads; "restore" may create the scratch databases a restore drill needs.
TIMESCALE_DUTIES = ("owner", "reader", "restore")
# Kafka principals by duty: "admin" administers topics and ACLs (`topics apply`); "relay"
# writes the ingest topics; "bridge" reads them in its group; "drills" owns the drills'
# topics. A duty without an entry uses the contract's own SASL user.
KAFKA_DUTIES = ("admin", "relay", "bridge", "drills")


def _ca_pem(v: str | None) -> str | None:
    """A CA bundle as PEM text: certificates only, never a private key."""
    if v is None:
        return v
    if "PRIVATE KEY" in v:
        raise ValueError("a CA bundle holds certificates only; this one holds a private key")
    if "-----BEGIN CERTIFICATE-----" not in v or "-----END CERTIFICATE-----" not in v:
        raise ValueError("expected PEM text with at least one -----BEGIN CERTIFICATE----- block")
    return v


CaPem = Annotated[str | None, AfterValidator(_ca_pem), Field(max_length=65536)]


class PoolSettings(_Model):
    """SQLAlchemy-style pool knobs; they apply to PostgreSQL targets only."""

    size: Count(ge=1, le=1000) = 5
    max_overflow: Count(ge=0, le=1000) = 10
    timeout_s: Seconds(le=3600) = 30.0
    recycle_s: Count(ge=-1, le=604_800) = 1800  # -1: never recycle; at most a week
    pre_ping: StrictBool = True


# The hypertables of backbone's schema (backbone.schema.HYPERTABLES names their time columns).
TIMESCALE_TABLES = ("daily_bars", "intraday_trades", "macro_events")


class TablePolicy(_Model):
    """Per-hypertable TimescaleDB policy, applied and drift-checked by `backbone migrate`.
    Whole days, so nothing from config is ever spliced into SQL as text."""

    chunk_interval_days: Count(ge=1, le=3650) = 7
    retention_days: Count(ge=1, le=36500) | None = None
    compress_after_days: Count(ge=1, le=36500) | None = None


class CandlePolicy(_Model):
    """The 1-minute OHLCV candles from trades (a continuous aggregate, real-time aggregation
    on): how far back each refresh recomputes, how close to now it stops, how often it runs."""

    refresh_window_hours: Count(ge=1, le=8760) = 24
    refresh_lag_minutes: Count(ge=0, le=1440) = 1
    refresh_every_minutes: Count(ge=1, le=1440) = 5


def _default_policies() -> dict[str, TablePolicy]:
    return {
        "daily_bars": TablePolicy(chunk_interval_days=30, retention_days=3650, compress_after_days=90),
        "intraday_trades": TablePolicy(chunk_interval_days=1, retention_days=90, compress_after_days=7),
        "macro_events": TablePolicy(chunk_interval_days=90, retention_days=3650),
    }


SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
SSLMODES = SslMode.__args__


def _url_sslmode(query: str) -> str | None:
    """The sslmode a postgresql:// URL's query names (libpq takes the last), or None."""
    given = parse_qs(query, keep_blank_values=True).get("sslmode")
    if not given:
        return None
    if given[-1] not in SSLMODES:  # the value only: the URL may hold a password
        raise ValueError(f"the URL's sslmode must be one of {', '.join(SSLMODES)}")
    return given[-1]


class TimescaleEndpoint(_Model):
    host: Host = "127.0.0.1"
    port: Port = 5432
    database: Identifier = "backbone"
    user: Identifier = "backbone"
    password: SecretStr | None = None
    sslmode: SslMode = "prefer"  # the URL's own sslmode wins; else this one is added to it
    url: SecretStr | None = None  # an explicit URL wins over the parts above
    # the CA that signed the server's certificate (PEM): clients verify the server with it
    ca_pem: CaPem = None
    # the other duties' accounts (TIMESCALE_DUTIES); a duty without one uses `user`
    roles: dict[Literal["owner", "reader", "restore"], Credential] = Field(default_factory=dict)
    ha: Literal["none", "patroni"] = "none"
    # Other members of a Patroni cluster. With ha "patroni" the composed URL lists host:port
    # and every replica, with target_session_attrs=read-write: libpq then follows the leader.
    replicas: list[HostPort] = Field(default_factory=list, max_length=16)
    # Plain PostgreSQL is acceptable only where the contract says so.
    require_timescaledb: StrictBool = True
    pool: PoolSettings = Field(default_factory=PoolSettings)
    policies: dict[str, TablePolicy] = Field(default_factory=_default_policies)
    candles: CandlePolicy = Field(default_factory=CandlePolicy)

    @field_validator("policies")
    @classmethod
    def _known_tables(cls, v: dict[str, TablePolicy]) -> dict[str, TablePolicy]:
        unknown = sorted(set(v) - set(TIMESCALE_TABLES))
        if unknown:
            raise ValueError(f"unknown table(s) {', '.join(map(repr, unknown))}; "
                             f"policies apply to {', '.join(TIMESCALE_TABLES)}")
        return v

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None:
            _url_sslmode(parse_service_url(v.get_secret_value(), ("postgresql", "postgres"), multi_host=True).query)
        return v

    def dsn(self, duty: str | None = None) -> str:
        """The libpq URL to connect with: the explicit URL (with `sslmode` added when it
        names none, so the manifest says what the connection uses), else composed from parts.
        `duty` names one of `roles`: its account replaces the contract's user."""
        if duty is not None and duty in self.roles:
            cred = self.roles[duty]
            base = self.model_copy(update={"user": cred.user, "password": cred.password, "roles": {}})
            if self.url is not None:  # the URL's hosts and options with the duty's account
                url = urlsplit(self.dsn())
                auth = quote(cred.user, safe="")
                if cred.password is not None:
                    auth += ":" + quote(cred.password.get_secret_value(), safe="")
                return urlunsplit(url._replace(netloc=auth + "@" + url.netloc.rpartition("@")[2]))
            return base.dsn()
        if self.url is not None:
            url = urlsplit(self.url.get_secret_value())
            if _url_sslmode(url.query) is None:
                url = url._replace(query="&".join(q for q in (url.query, f"sslmode={self.sslmode}") if q))
            return urlunsplit(url)
        auth = quote(self.user, safe="")
        if self.password is not None:
            auth += ":" + quote(self.password.get_secret_value(), safe="")
        hosts = f"{_host(self.host)}:{self.port}"
        query = f"sslmode={self.sslmode}"
        if self.ha == "patroni" and self.replicas:
            hosts += "".join(f",{_host(r.host)}:{r.port}" for r in self.replicas)
            query += "&target_session_attrs=read-write"
        return f"postgresql://{auth}@{hosts}/{quote(self.database, safe='')}?{query}"

    def target(self) -> dict[str, Any]:
        """Where the connection actually goes (from the URL when one is given)."""
        if self.url is None:
            return {"host": self.host, "port": self.port, "database": self.database, "user": self.user,
                    "sslmode": self.sslmode}
        # validated on the way in, so host and port are what they claim to be
        parts = parse_service_url(self.url.get_secret_value(), ("postgresql", "postgres"), multi_host=True)
        host, port = split_host_port(parts.netloc.rpartition("@")[2].split(",")[0])  # libpq: host1:p1,host2:p2
        return {"host": host.strip("[]"), "port": int(port) if port else 5432,
                "database": unquote(parts.path.lstrip("/")) or self.database,
                "user": unquote(parts.username or "") or self.user,
                "sslmode": _url_sslmode(parts.query) or self.sslmode}


class CachePolicy(_Model):
    namespace: str = Field("emp:cache", min_length=1, max_length=128, pattern=r"^[A-Za-z0-9:_.-]+$")
    ttl_seconds: Count(ge=1, le=31_536_000) = 900
    max_keys: Count(ge=1, le=1_000_000_000) = 1024


class RedisEndpoint(_Model):
    mode: Literal["standalone", "sentinel"] = "standalone"
    host: Host = "127.0.0.1"
    port: Port = 6379
    username: Identifier | None = None
    password: SecretStr | None = None
    tls: StrictBool = False
    db: Count(ge=0, le=99_999) = 0
    url: SecretStr | None = None
    ca_pem: CaPem = None  # the CA of the servers' (and Sentinels') certificates
    sentinels: list[HostPort] = Field(default_factory=list, max_length=16)
    # Sentinels' own account (they speak TLS when `tls` is on)
    sentinel_username: Identifier | None = None
    sentinel_password: SecretStr | None = None
    master_name: Name = "backbone"
    cache_policy: CachePolicy = Field(default_factory=CachePolicy)
    # a master stops accepting writes when fewer replicas than this acknowledged replication
    # within the lag: what bounds the writes an isolated master acknowledges and then loses
    # (0: no bound; replication is asynchronous either way)
    min_replicas_to_write: Count(ge=0, le=16) = 0
    min_replicas_max_lag_s: Count(ge=1, le=3600) = 10

    @field_validator("url")
    @classmethod
    def _redis_url(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None:
            parse_service_url(v.get_secret_value(), ("redis", "rediss"), multi_host=False)
        return v

    @model_validator(mode="after")
    def _sentinels_declared(self) -> "RedisEndpoint":
        if self.mode == "sentinel" and not self.sentinels:
            raise ValueError("mode 'sentinel' needs at least one entry in 'sentinels'")
        return self

    def connection_url(self) -> str:
        if self.url is not None:
            return self.url.get_secret_value()
        auth = ""
        if self.password is not None:
            auth = quote(self.username or "", safe="") + ":" + quote(self.password.get_secret_value(), safe="") + "@"
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{auth}{_host(self.host)}:{self.port}/{self.db}"

    def target(self) -> dict[str, Any]:
        if self.url is None:
            return {"host": self.host, "port": self.port, "db": self.db, "tls": self.tls}
        parts = parse_service_url(self.url.get_secret_value(), ("redis", "rediss"), multi_host=False)
        host, port = split_host_port(parts.netloc.rpartition("@")[2])
        return {"host": host.strip("[]"), "port": int(port) if port else 6379,
                "db": int(unquote(parts.path.lstrip("/")) or 0), "tls": parts.scheme == "rediss"}


class TopicSpec(_Model):
    name: str
    partitions: Count(ge=1, le=10000) = 6
    replication_factor: Count(ge=1, le=32) = 1
    config: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _TOPIC_NAME.match(v) or v in (".", ".."):
            raise ValueError(f"invalid Kafka topic name {v!r} (letters, digits, '.', '_', '-'; 1-249 chars)")
        if v.startswith("__"):
            raise ValueError(f"topic {v!r}: names starting with '__' are reserved for Kafka's internal topics")
        return v

    @field_validator("config", mode="before")
    @classmethod
    def _config(cls, v: Any) -> Any:
        if isinstance(v, dict):
            for key in v:
                if not isinstance(key, str) or not _CONFIG_KEY.match(key):
                    raise ValueError(f"invalid topic config key {key!r}")
            return {k: str(val).lower() if isinstance(val, bool) else str(val) for k, val in v.items()}
        return v


KAFKA_ACL_OPERATIONS = ("read", "write", "create", "delete", "alter", "describe", "cluster_action",
                        "describe_configs", "alter_configs", "idempotent_write", "all")


class AclSpec(_Model):
    """One declared Kafka ACL: `principal` may (or, allow=false, may not) do `operations` on
    the resources named `name` (literally, or every name starting with it)."""

    principal: str = Field(pattern=r"^User:[A-Za-z0-9_.@=-]{1,256}$")
    resource_type: Literal["topic", "group", "cluster", "transactional_id"]
    name: str = Field(min_length=1, max_length=249, pattern=r"^(\*|[A-Za-z0-9._-]+)$")
    pattern_type: Literal["literal", "prefixed"] = "literal"
    operations: list[Literal[KAFKA_ACL_OPERATIONS]] = Field(min_length=1, max_length=11)  # type: ignore[valid-type]
    allow: bool = True
    host: str = Field("*", pattern=r"^(\*|[0-9A-Fa-f.:]{1,45})$")

    @model_validator(mode="after")
    def _cluster(self) -> "AclSpec":
        if self.resource_type == "cluster" and (self.name != "kafka-cluster" or self.pattern_type != "literal"):
            raise ValueError("a cluster ACL names the resource 'kafka-cluster', literally")
        if self.name == "*" and self.pattern_type != "literal":
            raise ValueError("'*' (every resource) is a literal name")
        return self


class KafkaEndpoint(_Model):
    bootstrap_servers: str = Field("127.0.0.1:9092", min_length=1, max_length=8192)
    expected_brokers: Count(ge=1, le=1000) = 1
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = Field(None, max_length=256, pattern=r"^[\x21-\x7e]+$")
    sasl_password: SecretStr | None = None
    ca_pem: CaPem = None  # the CA of the brokers' certificates
    # the principals by duty (KAFKA_DUTIES); a duty without one uses sasl_username
    principals: dict[Literal["admin", "relay", "bridge", "drills"], Credential] = Field(default_factory=dict)
    topics: list[TopicSpec] = Field(default_factory=list, max_length=1000)
    acls: list[AclSpec] = Field(default_factory=list, max_length=1000)  # planned and applied with the topics

    @field_validator("bootstrap_servers")
    @classmethod
    def _servers(cls, v: str) -> str:
        for item in v.split(","):
            host, sep, port = item.strip().rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError("expected host:port[,host:port...] with ports from 1 to 65535")
            check_host(host)
        return v

    @model_validator(mode="after")
    def _unique_topics(self) -> "KafkaEndpoint":
        names = [t.name for t in self.topics]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"topics declared twice: {', '.join(dupes)}")
        return self


class Objective(_Model):
    rto_s: Seconds(le=31_536_000)
    rpo_s: Seconds(le=31_536_000, zero_ok=True)  # 0: no loss tolerated


class Objectives(_Model):
    timescale: Objective = Objective(rto_s=900, rpo_s=86400)
    kafka: Objective = Objective(rto_s=600, rpo_s=900)
    redis: Objective = Objective(rto_s=600, rpo_s=3600)


Ratio = Annotated[float, BeforeValidator(no_bool), Field(ge=0, le=1)]


class DataPolicy(_Model):
    """What the data path promises and where its events go; `validate` checks each bound."""
    events_topic: str = Field("ingest.events", pattern=_TOPIC_NAME.pattern)  # the relay needs it in kafka.topics
    consumer_group: Name = "backbone-bridge"
    # seconds since the last successful ingest of each dimension; null: not checked
    freshness_slo_s: dict[Literal["bars", "trades", "macro"], Seconds() | None] = Field(
        default_factory=lambda: {"bars": 93_600, "trades": 900, "macro": 604_800})
    outbox_max_age_s: Seconds() = 60  # an unpublished event older than this: degraded
    consumer_lag_max: Count(ge=0, le=1_000_000_000) = 10_000  # events behind, summed over partitions
    cache_hit_ratio_min: Ratio = 0.5
    cache_min_lookups: Count(ge=1, le=1_000_000_000) = 100  # fewer lookups: too few to judge the ratio
    cache_eviction_ratio_max: Ratio = 0.5  # evictions per entry written


class BootstrapStore(_Model):
    store: str = Field(".backbone/bootstrap/backbone.db", min_length=1, max_length=4096)


class Contract(_Model):
    # documents must state it (sources refuse one that does not); the model defaults it for
    # contracts built in code
    contract_version: Annotated[Literal[1], BeforeValidator(no_bool)] = CONTRACT_VERSION
    environment: Name = "default"
    tier: Literal["bootstrap", "institutional"] = "bootstrap"
    platform: Literal["embedded", "local", "docker", "kubernetes"] = "embedded"
    timescale: TimescaleEndpoint | None = None
    redis: RedisEndpoint | None = None
    kafka: KafkaEndpoint | None = None
    objectives: Objectives = Field(default_factory=Objectives)
    data: DataPolicy = Field(default_factory=DataPolicy)
    bootstrap: BootstrapStore | None = None

    @model_validator(mode="after")
    def _bootstrap_store(self) -> "Contract":
        if self.tier == "bootstrap" and self.bootstrap is None:
            self.bootstrap = BootstrapStore()
        return self

    def missing(self, *sections: str) -> list[str]:
        """The service sections among `sections` this institutional contract lacks (each
        command needs only its own: migrate the timescale section, topics the kafka one)."""
        if self.tier != "institutional":
            return []
        return [s for s in sections if getattr(self, s) is None]

    def secrets(self) -> list[str]:
        """Every secret value in the contract, for scrubbing output."""
        found: list[str] = []
        for section, fields in SECRET_FIELDS.items():
            endpoint = getattr(self, section)
            for name in fields:
                if endpoint is None:
                    continue
                if ".*." in name:  # a map of credentials: each entry's field
                    mapping, _, field = name.partition(".*.")
                    values = [getattr(v, field, None) for v in getattr(endpoint, mapping).values()]
                else:
                    values = [getattr(endpoint, name, None)]
                found += [v.get_secret_value() for v in values if v is not None]
        if self.timescale is not None:
            found.append(self.timescale.dsn())
            found += [self.timescale.dsn(duty) for duty in self.timescale.roles]
        if self.redis is not None:
            found.append(self.redis.connection_url())
        return [s for s in found if s]

    def manifest(self) -> dict[str, Any]:
        """The redaction-safe view: no secret values, URLs replaced by their targets.
        On the bootstrap tier only the embedded store is in use, so service sections
        (and their PostgreSQL pool knobs) are left out."""
        if self.tier == "bootstrap":
            return self.model_dump(mode="json", exclude={"timescale", "redis", "kafka"})
        data = self.model_dump(mode="json", exclude=_secret_exclude())
        if self.timescale is not None:
            data["timescale"].update(self.timescale.target())
            data["timescale"]["credentials"] = _present(self.timescale.password or self.timescale.url)
        if self.redis is not None:
            data["redis"].update(self.redis.target())
            data["redis"]["credentials"] = _present(self.redis.password or self.redis.url)
            data["redis"]["sentinel_credentials"] = _present(self.redis.sentinel_password)
        if self.kafka is not None:
            data["kafka"]["credentials"] = _present(self.kafka.sasl_password)
        for section in ("timescale", "redis", "kafka"):  # the CA by its fingerprint: PEM is long
            if data.get(section) is not None and data[section].get("ca_pem") is not None:
                data[section]["ca_pem"] = "sha256:" + hashlib.sha256(data[section]["ca_pem"].encode()).hexdigest()
        for section, mapping in (("timescale", "roles"), ("kafka", "principals")):
            endpoint = getattr(self, section)
            if endpoint is not None:
                for duty, cred in getattr(endpoint, mapping).items():
                    data[section][mapping][duty]["credentials"] = _present(cred.password)
        return data


def null_sections(document: dict[str, Any]) -> list[str]:
    """Sections a document gives as null: a contract leaves a section out, it never nulls it."""
    return [k for k in ("timescale", "redis", "kafka", "objectives", "data", "bootstrap")
            if k in document and document[k] is None]


def _secret_exclude() -> dict[str, Any]:
    """SECRET_FIELDS as pydantic's `exclude` argument ("roles.*.password" included)."""
    out: dict[str, Any] = {}
    for section, fields in SECRET_FIELDS.items():
        spec: dict[str, Any] = {}
        for name in fields:
            if ".*." in name:
                mapping, _, field = name.partition(".*.")
                spec[mapping] = {"__all__": {field}}
            else:
                spec[name] = True
        out[section] = spec
    return out


def _present(secret: SecretStr | None) -> str:
    return "set" if secret is not None else "none"


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
