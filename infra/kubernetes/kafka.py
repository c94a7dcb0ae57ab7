"""Kafka on Kubernetes: a StatefulSet of combined broker+controller KRaft nodes.

Every node is a voter, addressed through the headless Service. The generator's properties,
with every listener secured (infra/security.py), are `server.properties` in a ConfigMap; the
start script adds the two that differ per pod (node id, advertised address) from downward-API
variables and the Secret `kafka-credentials`' TLS part, formats the log directory once with
the salted SCRAM credentials, and starts the broker. No secret in the environment.
"""
from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from backbone.serviceconfig import KafkaNode, kafka_server_properties, render_properties

from infra import generated, security, service_settings
from infra import topology as t
from infra.kubernetes import common
from infra.spec import StackSpec, memory_bytes

COMPONENT = "kafka"
APP_UID = 1000  # `appuser` of the apache/kafka image
DATA_MOUNT = "/var/lib/kafka/data"
# A subdirectory: a fresh volume's root may hold lost+found, which Kafka would take for a
# damaged partition directory.
LOG_DIR = f"{DATA_MOUNT}/kraft"
KAFKA_BIN = "/opt/kafka/bin"
CONFIG_DIR, SECRETS_DIR, WORK_DIR = "/etc/kafka-config", "/etc/kafka-secrets", "/tmp/kafka"
PER_POD = ("node.id", "advertised.listeners")


def server_properties(spec: StackSpec) -> tuple[dict[str, str], dict[str, str]]:
    """(cluster-wide, per-pod) server properties; per-pod values hold `$POD_*` shell references
    the start script expands."""
    # The pod's own node: its id and host come from POD_INDEX and POD_NAME, so one pod
    # template serves every ordinal.
    host = f"$POD_NAME.{t.headless(t.KAFKA)}.{spec.namespace}.svc.cluster.local"
    this_node = KafkaNode(node_id="$POD_INDEX", host=host,  # type: ignore[arg-type]
                          port=t.KAFKA_PORT, controller_port=t.KAFKA_CONTROLLER_PORT)
    props = kafka_server_properties(this_node, t.kafka_voters(spec), LOG_DIR,
                                    service_settings.kafka_cluster(spec), bind_host="0.0.0.0")
    props = security.kafka_listeners(props, "0.0.0.0", t.KAFKA_PORT, t.KAFKA_CONTROLLER_PORT, host, host)
    per_pod = {key: props.pop(key) for key in PER_POD}
    return props, per_pod


class Kafka(pulumi.ComponentResource):
    def __init__(self, name: str, spec: StackSpec, namespace: pulumi.Input[str],
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("backbone:kubernetes:Kafka", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cluster_props, per_pod = server_properties(spec)
        cluster_id = generated.secret("kafka_cluster_id")
        per_pod_lines = "\n".join(f'  echo "{k}={v}"' for k, v in per_pod.items())
        files = {"server.properties": render_properties(cluster_props),
                 "start-kafka.sh": security.kafka_start_script(CONFIG_DIR, SECRETS_DIR, WORK_DIR, LOG_DIR,
                                                               per_pod_lines)}
        config = k8s.core.v1.ConfigMap(
            f"{name}-config", metadata=common.metadata(f"{t.KAFKA}-config", namespace, COMPONENT),
            data=files, opts=child)
        cert, ca = generated.certificate("tls_kafka_cert"), generated.certificate("tls_ca_pem")
        credentials = k8s.core.v1.Secret(
            f"{name}-credentials", metadata=common.metadata(f"{t.KAFKA}-credentials", namespace, COMPONENT),
            type="Opaque",
            string_data=pulumi.Output.all(generated.secret("tls_kafka_key"),
                                          pulumi.Output.all(**generated.kafka_passwords()), cluster_id)
            .apply(lambda args: {**security.kafka_credential_files(args[1], cert or "", args[0], ca or ""),
                                 "cluster-id": args[2]}),
            opts=child)
        named_ports = {"client": t.KAFKA_PORT, "controller": t.KAFKA_CONTROLLER_PORT,
                       "internal": security.KAFKA_INTERNAL_PORT}
        headless = common.headless_service(t.headless(t.KAFKA), namespace, COMPONENT, named_ports, self)
        common.client_service(t.KAFKA, namespace, COMPONENT, {"client": t.KAFKA_PORT}, self)

        heap_mb = memory_bytes(spec.sizes.resources.kafka.limits.memory) // 2**20 // 2
        probe = security.kafka_probe(security.KAFKA_INTERNAL_PORT, WORK_DIR)
        container = {
            "name": "kafka",
            "image": spec.images.kafka,
            "command": ["sh", f"{CONFIG_DIR}/start-kafka.sh"],
            # Not a server property: the JVM's heap. Half the memory limit leaves the rest to
            # the page cache Kafka reads from. No secret in the environment.
            "env": common.pod_env("POD_NAME", "POD_INDEX")
            + [{"name": "KAFKA_HEAP_OPTS", "value": f"-Xms{heap_mb}m -Xmx{heap_mb}m"}],
            "ports": [{"name": port_name, "container_port": port} for port_name, port in named_ports.items()],
            # The JVM takes a while; the startup probe holds liveness off until it listens.
            "startup_probe": common.tcp_probe(t.KAFKA_PORT, period=5, failures=60),
            "readiness_probe": common.exec_probe(probe, period=15, timeout=15),
            "liveness_probe": common.tcp_probe(t.KAFKA_PORT, period=10, failures=6),
            "resources": common.resources(spec.sizes.resources.kafka),
            "security_context": common.container_security(),
            "volume_mounts": [{"name": "data", "mount_path": DATA_MOUNT},
                              {"name": "config", "mount_path": CONFIG_DIR, "read_only": True},
                              {"name": "credentials", "mount_path": SECRETS_DIR, "read_only": True}],
        }
        self.statefulset = k8s.apps.v1.StatefulSet(
            f"{name}-statefulset",
            metadata=common.metadata(t.KAFKA, namespace, COMPONENT),
            spec={
                "service_name": headless.metadata.apply(lambda m: m.name),
                "replicas": spec.sizes.kafka_brokers,
                # Parallel: a voter is not ready until a quorum runs, so ordered start-up
                # (each pod waiting for the previous one to be ready) would never finish.
                "pod_management_policy": "Parallel",
                "selector": {"match_labels": common.selector(COMPONENT)},
                "template": {
                    "metadata": {"labels": common.labels(COMPONENT),
                                 "annotations": {"backbone/config-checksum": common.checksum(files),
                                                 "backbone/tls-checksum": common.certificate_checksum("kafka")}},
                    "spec": {
                        # Off: a Service named `kafka` would inject KAFKA_PORT=tcp://..., which
                        # the image would read as a server property.
                        "enable_service_links": False,
                        "security_context": common.pod_security(APP_UID),
                        "termination_grace_period_seconds": 60,
                        "containers": [container],
                        "volumes": [{"name": "config", "config_map": {
                            "name": config.metadata.apply(lambda m: m.name), "default_mode": 0o555}},
                                    common.secret_volume("credentials", credentials)],
                        **common.member_placement(COMPONENT, spec.sizes.kafka_brokers,
                                                  spec.placement.quorum_anti_affinity),
                    },
                },
                "volume_claim_templates": [common.data_claim(spec.sizes.storage.kafka, spec.storage_class)],
            },
            opts=child)
        common.disruption_budget(t.KAFKA, namespace, COMPONENT, self, voters=spec.sizes.kafka_brokers,
                                 keep=spec.sizes.kafka_brokers - 1)  # one broker at a time
        common.network_policy(t.KAFKA, namespace, COMPONENT, client_ports=[t.KAFKA_PORT],
                              peer_ports=[t.KAFKA_CONTROLLER_PORT, security.KAFKA_INTERNAL_PORT], parent=self)
        self.register_outputs({"statefulset": self.statefulset.metadata.apply(lambda m: m.name),
                               "brokers": spec.sizes.kafka_brokers})
