"""TimescaleDB on docker: one container of the official image, settings from the generator."""
from __future__ import annotations

import pulumi
import pulumi_docker as docker

from backbone.serviceconfig import postgresql_settings

from infra import generated, service_settings
from infra import topology as t
from infra.docker import common
from infra.spec import StackSpec

DATA_DIR = "/var/lib/postgresql/data"


class Timescale(pulumi.ComponentResource):
    password: pulumi.Output[str]

    def __init__(self, name: str, spec: StackSpec, network: docker.Network,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("backbone:docker:Timescale", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        container_name = t.docker_name(spec, "timescale")

        self.password = generated.secret("timescale_password")
        image = common.pinned_image(f"{name}-image", spec.images.timescale, self)
        volume = common.named_volume(f"{name}-data", f"{container_name}-data", "timescale", self)

        # The generator's parameters become `postgres -c key=value` flags, which override
        # whatever the image's init scripts write into postgresql.conf.
        settings = postgresql_settings(service_settings.postgres(spec))
        command = ["postgres"] + [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]
        env = self.password.apply(lambda password: [
            f"POSTGRES_USER={t.DATABASE_USER}",
            f"POSTGRES_DB={t.DATABASE}",
            f"POSTGRES_PASSWORD={password}",
            "TIMESCALEDB_TELEMETRY=off",
            "NO_TS_TUNE=true",  # the settings above are the tuning; no second opinion at init
        ])
        self.container = docker.Container(
            f"{name}-container",
            name=container_name,
            image=image.image_id,
            command=command,
            envs=env,
            ports=[common.localhost_port(t.TIMESCALE_PORT, spec.ports.timescale)],
            volumes=[docker.ContainerVolumeArgs(volume_name=volume.name, container_path=DATA_DIR)],
            # Over TCP, not the socket: during init the entrypoint's temporary server listens
            # on the socket only, and must not count as healthy.
            healthcheck=common.healthcheck(
                f"pg_isready -h 127.0.0.1 -p {t.TIMESCALE_PORT} -U {t.DATABASE_USER} -d {t.DATABASE}"),
            restart=common.RESTART_POLICY,
            wait=True,
            wait_timeout=120,
            networks_advanced=common.network_attachment(network, "timescale"),
            labels=common.labels("timescale", spec.stack),
            **common.limits(spec.sizes.resources.timescale),
            opts=child,
        )
        self.register_outputs({"container": self.container.name, "port": spec.ports.timescale,
                               "password": self.password})
