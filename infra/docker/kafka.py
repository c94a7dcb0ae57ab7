"""Kafka on docker: one combined KRaft node of the official apache/kafka image.

server.properties comes from the generator with every listener secured (infra/security.py:
SASL_SSL with SCRAM-SHA-512 for clients on the published port, SSL with client certificates
for the broker's own and the controller's listeners, StandardAuthorizer); the key, the
certificates and the salted SCRAM credentials are uploaded files only the Kafka user reads,
and the start script assembles them (the same script as on kubernetes). No KAFKA_* variable.
"""
from __future__ import annotations

import pulumi
import pulumi_docker as docker

from backbone.serviceconfig import kafka_server_properties, render_properties

from infra import generated, security, service_settings
from infra import topology as t
from infra.docker import common
from infra.spec import StackSpec

LOG_DIR = "/var/lib/kafka/data"
# Directories the image already has (uploads do not create them)
CONFIG_DIR = SECRETS_DIR = "/opt/kafka/config/backbone"
FILES = "/opt/kafka/config/"
WORK_DIR = "/tmp/kafka"
KAFKA_UID = 1000  # `appuser` of the apache/kafka image


def server_properties(spec: StackSpec) -> dict[str, str]:
    node = t.docker_kafka_node(spec)
    props = kafka_server_properties(node, [node], LOG_DIR, service_settings.kafka_cluster(spec), bind_host="0.0.0.0")
    # the broker reaches its own INTERNAL listener, and the probe too, as localhost
    return security.kafka_listeners(props, "0.0.0.0", node.port, node.controller_port, node.host, "localhost")


class Kafka(pulumi.ComponentResource):
    def __init__(self, name: str, spec: StackSpec, network: docker.Network,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("backbone:docker:Kafka", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        container_name = t.docker_name(spec, "kafka")

        image = common.pinned_image(f"{name}-image", spec.images.kafka, self)
        volume = common.named_volume(f"{name}-data", f"{container_name}-data", "kafka", self)

        node = t.docker_kafka_node(spec)
        prefix = f"{FILES}backbone-"
        start = security.kafka_start_script(CONFIG_DIR, SECRETS_DIR, WORK_DIR, LOG_DIR, per_pod="")
        # the script reads `<dir>/name`; on docker the files are `<FILES>backbone-name`
        start = start.replace(f"{CONFIG_DIR}/", prefix)
        cert, ca = generated.certificate("tls_kafka_cert") or "", generated.certificate("tls_ca_pem") or ""
        passwords = pulumi.Output.all(**generated.kafka_passwords())
        credentials = pulumi.Output.all(generated.secret("tls_kafka_key"), passwords).apply(
            lambda args: security.kafka_credential_files(args[1], cert, args[0], ca))
        secrets = {f"{prefix}{file}": credentials.apply(lambda files, f=file: files[f])
                   for file in ("tls.properties", "scram-credentials")}
        secrets[f"{prefix}cluster-id"] = generated.secret("kafka_cluster_id")
        self.container = docker.Container(
            f"{name}-container",
            name=container_name,
            image=image.image_id,
            user=str(KAFKA_UID),
            command=["sh", f"{prefix}start-kafka.sh"],
            uploads=[docker.ContainerUploadArgs(file=f"{prefix}server.properties",
                                                content=render_properties(server_properties(spec)),
                                                permissions="0644"),
                     docker.ContainerUploadArgs(file=f"{prefix}start-kafka.sh", content=start, permissions="0555"),
                     *common.secret_uploads(secrets, KAFKA_UID, "0400")],
            ports=[common.localhost_port(node.port, spec.ports.kafka)],
            volumes=[docker.ContainerVolumeArgs(volume_name=volume.name, container_path=LOG_DIR)],
            healthcheck=common.healthcheck(security.kafka_probe(security.KAFKA_INTERNAL_PORT, WORK_DIR),
                                           start_period="60s"),
            restart=common.RESTART_POLICY,
            wait=True,
            wait_timeout=180,
            networks_advanced=common.network_attachment(network, "kafka"),
            labels=common.labels("kafka", spec.stack),
            **common.limits(spec.sizes.resources.kafka),
            opts=child,
        )
        self.register_outputs({"container": self.container.name, "port": spec.ports.kafka})
