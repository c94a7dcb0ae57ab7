"""TimescaleDB on docker: one container of the official image, settings from the generator.

TLS only (`hostssl` + scram-sha-256 in the uploaded pg_hba.conf, the stack's certificate),
the superuser `postgres` for the container's own socket, and the roles by duty created by an
init script at the first start (infra/security.py). Passwords are uploaded files the
postgres user alone reads (`POSTGRES_PASSWORD_FILE`), never the container's environment.
"""
from __future__ import annotations

import pulumi
import pulumi_docker as docker

from backbone.serviceconfig import postgresql_settings

from infra import generated, security, service_settings
from infra import topology as t
from infra.docker import common
from infra.spec import StackSpec

DATA_DIR = "/var/lib/postgresql/data"
# The postgres user's home: it exists in the image (uploads do not create directories), and the
# data volume is its subdirectory.
FILES = "/var/lib/postgresql/backbone-"
TLS = security.tls_files(FILES)
HBA_FILE = f"{FILES}pg_hba.conf"
SECRETS = f"{FILES}secret-"
POSTGRES_UID = 70  # `postgres` of the (Alpine) timescale/timescaledb image


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
        settings = {**postgresql_settings(service_settings.postgres(spec)), **security.postgres_ssl(TLS),
                    "hba_file": HBA_FILE}
        command = ["postgres"] + [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]
        env = [
            f"POSTGRES_USER={security.SUPERUSER}",
            # a path: the entrypoint reads the superuser's password from the uploaded file
            f"POSTGRES_PASSWORD_FILE={SECRETS}superuser-password",
            "POSTGRES_INITDB_ARGS=--auth-host=scram-sha-256 --auth-local=peer",
            "TIMESCALEDB_TELEMETRY=off",
            "NO_TS_TUNE=true",  # the settings above are the tuning; no second opinion at init
        ]
        secrets = {f"{SECRETS}{file}": generated.secret(key) for file, key in security.TIMESCALE_SECRET_FILES.items()}
        uploads = [
            *common.secret_uploads(secrets, POSTGRES_UID, "0400"),
            *common.tls_uploads("timescale", FILES, POSTGRES_UID),
            docker.ContainerUploadArgs(file=HBA_FILE, content="\n".join(security.pg_hba(replication=False)) + "\n",
                                       permissions="0644"),
            # run once by the entrypoint on a new data directory, as the superuser over the socket
            docker.ContainerUploadArgs(file="/docker-entrypoint-initdb.d/900-backbone-roles.sql",
                                       content=security.roles_sql(SECRETS), permissions="0644"),
        ]
        self.container = docker.Container(
            f"{name}-container",
            name=container_name,
            image=image.image_id,
            command=command,
            envs=env,
            uploads=uploads,
            ports=[common.localhost_port(t.TIMESCALE_PORT, spec.ports.timescale)],
            volumes=[docker.ContainerVolumeArgs(volume_name=volume.name, container_path=DATA_DIR)],
            # Over TCP, not the socket: during init the entrypoint's temporary server listens
            # on the socket only, and must not count as healthy. pg_isready does not log in.
            healthcheck=common.healthcheck(
                f"pg_isready -h 127.0.0.1 -p {t.TIMESCALE_PORT} -U {security.APP} -d {t.DATABASE}"),
            restart=common.RESTART_POLICY,
            wait=True,
            wait_timeout=120,
            networks_advanced=common.network_attachment(network, "timescale"),
            labels=common.labels("timescale", spec.stack),
            **common.limits(spec.sizes.resources.timescale),
            opts=child,
        )
        self.register_outputs({"container": self.container.name, "port": spec.ports.timescale})
