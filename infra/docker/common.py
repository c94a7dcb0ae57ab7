"""Pieces every docker component uses: pinned images, volumes, limits, ports, healthchecks."""
from __future__ import annotations

import pulumi
import pulumi_docker as docker

from infra.spec import Resources, cpu_millis, memory_bytes

RESTART_POLICY = "unless-stopped"


def pinned_image(name: str, ref: str, parent: pulumi.Resource) -> docker.RemoteImage:
    # keep_locally: destroying a stack must not delete an image other stacks still use.
    return docker.RemoteImage(name, name=ref, keep_locally=True, opts=pulumi.ResourceOptions(parent=parent))


def named_volume(name: str, volume_name: str, service: str, parent: pulumi.Resource) -> docker.Volume:
    return docker.Volume(name, name=volume_name, labels=[docker.VolumeLabelArgs(label="backbone.service", value=service)],
                         opts=pulumi.ResourceOptions(parent=parent))


def localhost_port(internal: int, external: int) -> docker.ContainerPortArgs:
    # Published on loopback only: dev services are for this machine, not its network.
    return docker.ContainerPortArgs(internal=internal, external=external, ip="127.0.0.1", protocol="tcp")


def healthcheck(command: str, start_period: str = "30s") -> docker.ContainerHealthcheckArgs:
    return docker.ContainerHealthcheckArgs(tests=["CMD-SHELL", command], interval="10s", timeout="5s",
                                           retries=5, start_period=start_period)


def limits(resources: Resources) -> dict[str, object]:
    """Container keyword arguments enforcing the service's cpu/memory limits."""
    return {"memory": memory_bytes(resources.limits.memory) // 2**20,
            "cpus": f"{cpu_millis(resources.limits.cpu) / 1000:g}"}


def labels(service: str, stack: str) -> list[docker.ContainerLabelArgs]:
    return [docker.ContainerLabelArgs(label="backbone.service", value=service),
            docker.ContainerLabelArgs(label="backbone.stack", value=stack)]


def network_attachment(network: docker.Network, alias: str) -> list[docker.ContainerNetworksAdvancedArgs]:
    return [docker.ContainerNetworksAdvancedArgs(name=network.name, aliases=[alias])]


def secret_uploads(files: dict[str, pulumi.Input[str]], uid: int, mode: str = "0400") -> list[docker.ContainerUploadArgs]:
    """Files only the service's user reads (path -> content): the way secrets reach a container
    here, never its environment. The content is a Pulumi secret, so the state holds it encrypted."""
    return [docker.ContainerUploadArgs(file=path, content=content, owner=str(uid), group=str(uid), permissions=mode)
            for path, content in files.items()]


def tls_uploads(service: str, prefix: str, uid: int) -> list[docker.ContainerUploadArgs]:
    """The stack's CA, the service's certificate (public) and key (secret), owned by the service's
    user (PostgreSQL refuses a key others can read)."""
    from infra import generated, security
    files = security.tls_files(prefix)
    return secret_uploads({files.ca: generated.certificate("tls_ca_pem") or "",
                           files.cert: generated.certificate(f"tls_{service}_cert") or "",
                           files.key: generated.secret(f"tls_{service}_key")}, uid, "0400")
