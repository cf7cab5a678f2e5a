"""Build and run the project's image with podman (Docker's engine does not run here).

No registry is reachable, so the image's base is a local Debian bookworm image
with Python 3.11 made once with debootstrap (docker/build-local-base.sh) and
passed in as BASE_IMAGE. podman needs runc and explicit ulimits on this
machine: a containers.conf saying so is written once and named by
CONTAINERS_CONF for every podman call.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from support.runner import REPO

BASE_IMAGE = "localhost/bookworm-python:local"
IMAGE = "localhost/financial-tracker-etl:test"
_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
"""


def podman_env() -> dict[str, str]:
    conf = Path(tempfile.gettempdir()) / "financial-tracker-etl-containers.conf"
    if not conf.exists() or conf.read_text() != _CONF:
        conf.write_text(_CONF)
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


def podman(*args: str, timeout: float = 120, check: bool = False) -> subprocess.CompletedProcess:
    result = subprocess.run(["podman", *args], env=podman_env(), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args[:3])} … exited {result.returncode}:\n{result.stderr[-3000:]}")
    return result


def build_image() -> str:
    """Build the base (once per machine) and the project's image; return the image name."""
    base = subprocess.run([str(REPO / "docker" / "build-local-base.sh"), BASE_IMAGE], env=podman_env(),
                          capture_output=True, text=True, timeout=900)
    if base.returncode != 0:
        raise AssertionError(f"building the local base image failed:\n{base.stdout}\n{base.stderr[-3000:]}")
    podman("build", "--isolation", "chroot", "-v", "/etc/ssl/certs:/etc/ssl/certs:ro",
           "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "-t", IMAGE, str(REPO), timeout=900, check=True)
    return IMAGE


def run(image: str, *command: str, env: dict[str, str] | None = None, options: tuple[str, ...] = (),
        timeout: float = 120) -> subprocess.CompletedProcess:
    """`podman run --rm` the image on the host network with `env`; the command goes to the entrypoint."""
    flags = [f"--env={name}={value}" for name, value in (env or {}).items()]
    return podman("run", "--rm", "--pull=never", "--network=host", *flags, *options, image, *command,
                  timeout=timeout)
