"""Redis on docker: one container, redis.conf from the generator, TLS only, ACL users.

The plaintext port is closed (`port 0`; TLS on the published port), the `default` user is
off, and the users by duty live in an uploaded ACL file (password hashes) only the redis
user reads (infra/security.py). No password in the container's environment: the
healthcheck reads the admin user's from its uploaded file.
"""
from __future__ import annotations

import pulumi
import pulumi_docker as docker

from backbone.serviceconfig import redis_conf

from infra import generated, security, service_settings
from infra import topology as t
from infra.docker import common
from infra.spec import StackSpec

# A directory the image already has: the upload does not create missing parents.
CONF_PATH = "/usr/local/etc/redis.conf"
FILES = "/usr/local/etc/backbone-"
TLS = security.tls_files(FILES)
ACL_PATH, AUTH_PATH, ADMIN_PASSWORD = f"{FILES}users.acl", f"{FILES}auth.conf", f"{FILES}admin-password"
DATA_DIR = "/data"
REDIS_UID = 999  # the `redis` user of the official image


def healthcheck_command() -> str:
    return (f'REDISCLI_AUTH="$(cat {ADMIN_PASSWORD})" redis-cli --no-auth-warning --tls --cacert {TLS.ca} '
            f"--user {security.REDIS_ADMIN} -p {t.REDIS_PORT} ping | grep -q PONG")


class Redis(pulumi.ComponentResource):
    password: pulumi.Output[str]

    def __init__(self, name: str, spec: StackSpec, network: docker.Network,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("backbone:docker:Redis", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        container_name = t.docker_name(spec, "redis")

        passwords = {user: generated.secret(key) for user, key in security.REDIS_USERS.items()}
        self.password = passwords[security.REDIS_APP]
        image = common.pinned_image(f"{name}-image", spec.images.redis, self)
        volume = common.named_volume(f"{name}-data", f"{container_name}-data", "redis", self)

        conf = security.tls_only(redis_conf(service_settings.redis(spec, DATA_DIR)), t.REDIS_PORT, TLS)
        conf += f"include {AUTH_PATH}\n"
        every = pulumi.Output.all(**passwords)
        secrets = {
            ACL_PATH: every.apply(lambda pw: security.redis_acl(pw, spec.cache_policy.namespace)),
            AUTH_PATH: every.apply(lambda pw: security.redis_secret_conf(ACL_PATH, pw[security.REDIS_REPLICATION])),
            ADMIN_PASSWORD: passwords[security.REDIS_ADMIN],
        }
        self.container = docker.Container(
            f"{name}-container",
            name=container_name,
            image=image.image_id,
            user=str(REDIS_UID),
            command=["redis-server", CONF_PATH],
            uploads=[docker.ContainerUploadArgs(file=CONF_PATH, content=conf, permissions="0644"),
                     *common.secret_uploads(secrets, REDIS_UID, "0400"),
                     *common.tls_uploads("redis", FILES, REDIS_UID)],
            ports=[common.localhost_port(t.REDIS_PORT, spec.ports.redis)],
            volumes=[docker.ContainerVolumeArgs(volume_name=volume.name, container_path=DATA_DIR)],
            healthcheck=common.healthcheck(healthcheck_command(), start_period="10s"),
            restart=common.RESTART_POLICY,
            wait=True,
            wait_timeout=60,
            networks_advanced=common.network_attachment(network, "redis"),
            labels=common.labels("redis", spec.stack),
            **common.limits(spec.sizes.resources.redis),
            opts=child,
        )
        self.register_outputs({"container": self.container.name, "port": spec.ports.redis})
