"""Redis on docker: one password-protected container, redis.conf from the generator."""
from __future__ import annotations

import pulumi
import pulumi_docker as docker

from backbone.serviceconfig import redis_conf

from infra import generated, service_settings
from infra import topology as t
from infra.docker import common
from infra.spec import StackSpec

# A directory the image already has: the upload does not create missing parents.
CONF_PATH = "/usr/local/etc/redis.conf"
DATA_DIR = "/data"
REDIS_UID = "999"  # the `redis` user of the official image


class Redis(pulumi.ComponentResource):
    password: pulumi.Output[str]

    def __init__(self, name: str, spec: StackSpec, network: docker.Network,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("backbone:docker:Redis", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        container_name = t.docker_name(spec, "redis")

        self.password = generated.secret("redis_password")
        image = common.pinned_image(f"{name}-image", spec.images.redis, self)
        volume = common.named_volume(f"{name}-data", f"{container_name}-data", "redis", self)

        conf = redis_conf(service_settings.redis(spec, DATA_DIR))
        self.container = docker.Container(
            f"{name}-container",
            name=container_name,
            image=image.image_id,
            user=REDIS_UID,
            # The password comes from the environment, so neither the uploaded redis.conf
            # nor the image holds it; redis refuses unauthenticated clients from the start.
            command=["sh", "-c",
                     f'exec redis-server {CONF_PATH} --requirepass "$REDIS_PASSWORD" --masterauth "$REDIS_PASSWORD"'],
            envs=self.password.apply(lambda password: [f"REDIS_PASSWORD={password}"]),
            uploads=[docker.ContainerUploadArgs(file=CONF_PATH, content=conf, permissions="0644")],
            ports=[common.localhost_port(t.REDIS_PORT, spec.ports.redis)],
            volumes=[docker.ContainerVolumeArgs(volume_name=volume.name, container_path=DATA_DIR)],
            healthcheck=common.healthcheck(
                'redis-cli --no-auth-warning -a "$REDIS_PASSWORD" ping | grep -q PONG', start_period="10s"),
            restart=common.RESTART_POLICY,
            wait=True,
            wait_timeout=60,
            networks_advanced=common.network_attachment(network, "redis"),
            labels=common.labels("redis", spec.stack),
            **common.limits(spec.sizes.resources.redis),
            opts=child,
        )
        self.register_outputs({"container": self.container.name, "port": spec.ports.redis,
                               "password": self.password})
