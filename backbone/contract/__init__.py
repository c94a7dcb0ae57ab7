"""The outputs contract: the versioned model of one environment (`model`) and the
configuration sources it is resolved from, in precedence order (`sources`)."""
from ..errors import ConfigError
from .model import (CONTRACT_VERSION, PLATFORMS, SECRET_FIELDS, TIERS, BootstrapStore, CachePolicy, CandlePolicy,
                    Contract, DataPolicy, KafkaEndpoint, Objective, Objectives, PoolSettings, RedisEndpoint,
                    TablePolicy, TimescaleEndpoint, TopicSpec, AclSpec, KAFKA_ACL_OPERATIONS)
from .outputs import ContractError, merge_outputs, split_secrets
from .sources import SETTINGS, Sources, load_contract

__all__ = ["CONTRACT_VERSION", "PLATFORMS", "SECRET_FIELDS", "TIERS", "BootstrapStore", "CachePolicy", "CandlePolicy",
           "ConfigError", "Contract", "DataPolicy", "ContractError", "KafkaEndpoint", "Objective", "Objectives", "PoolSettings", "RedisEndpoint",
           "SETTINGS", "Sources", "TablePolicy", "TimescaleEndpoint", "TopicSpec", "load_contract", "merge_outputs",
           "split_secrets", "AclSpec", "KAFKA_ACL_OPERATIONS"]
