"""Kafka on docker: one combined KRaft node of the official apache/kafka image.

The image turns KAFKA_* variables into server.properties, so the generator's properties go
in through `kafka_container_env`.
"""
from __future__ import annotations

import pulumi
import pulumi_docker as docker

from backbone.serviceconfig import kafka_container_env, kafka_server_properties

from infra import generated, service_settings
from infra import topology as t
from infra.docker import common
from infra.spec import StackSpec

LOG_DIR = "/var/lib/kafka/data"
KAFKA_BIN = "/opt/kafka/bin"


class Kafka(pulumi.ComponentResource):
    def __init__(self, name: str, spec: StackSpec, network: docker.Network,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("backbone:docker:Kafka", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        container_name = t.docker_name(spec, "kafka")

        image = common.pinned_image(f"{name}-image", spec.images.kafka, self)
        volume = common.named_volume(f"{name}-data", f"{container_name}-data", "kafka", self)
        cluster_id = generated.secret("kafka_cluster_id")

        node = t.docker_kafka_node(spec)
        props = kafka_server_properties(node, [node], LOG_DIR, service_settings.kafka_cluster(spec), bind_host="0.0.0.0")
        env = sorted(f"{key}={value}" for key, value in kafka_container_env(props).items())
        self.container = docker.Container(
            f"{name}-container",
            name=container_name,
            image=image.image_id,
            envs=cluster_id.apply(lambda cid: env + [f"CLUSTER_ID={cid}"]),
            ports=[common.localhost_port(node.port, spec.ports.kafka)],
            volumes=[docker.ContainerVolumeArgs(volume_name=volume.name, container_path=LOG_DIR)],
            healthcheck=common.healthcheck(
                f"{KAFKA_BIN}/kafka-broker-api-versions.sh --bootstrap-server 127.0.0.1:{node.port} >/dev/null",
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
