"""Build and run the project's image with podman (Docker's engine does not run here).

No registry is reachable, so the image's base is a local Debian bookworm image
with Python 3.11 made once with debootstrap (docker/build-local-base.sh) and
passed in as BASE_IMAGE. podman needs runc and explicit ulimits on this
machine: a containers.conf saying so is written once and named by
CONTAINERS_CONF for every podman call.

The test image (tagged per session) is built without a layer cache, so nothing
of the build stage stays behind, and removed at the end of the session with
anything its build left dangling, and so is the containers.conf, unless
KEEP_IMAGES=1; the local base stays, as it takes a minute to make and is reused.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from support.runner import REPO

BASE_IMAGE = "localhost/bookworm-python:local"
# One tag per test session, so sessions on one machine never remove or retag each other's image.
IMAGE = f"localhost/financial-tracker-etl:test-{os.getpid()}"
_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
"""


CONF = Path(tempfile.gettempdir()) / f"financial-tracker-etl-containers-{os.getpid()}.conf"


def podman_env() -> dict[str, str]:
    if not CONF.exists() or CONF.read_text() != _CONF:
        CONF.write_text(_CONF)
    return {**os.environ, "CONTAINERS_CONF": str(CONF)}


def podman(*args: str, timeout: float = 120, check: bool = False) -> subprocess.CompletedProcess:
    result = subprocess.run(["podman", *args], env=podman_env(), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args[:3])} … exited {result.returncode}:\n{result.stderr[-3000:]}")
    return result


def keep_images() -> bool:
    """KEEP_IMAGES=1 keeps the test image after the run (to look into it, or to save a rebuild)."""
    return os.environ.get("KEEP_IMAGES") == "1"


def image_exists(name: str) -> bool:
    return podman("image", "exists", name).returncode == 0


def dangling_images() -> frozenset[str]:
    """Ids of untagged images that no tagged image uses (what a build stage leaves)."""
    listed = podman("images", "--quiet", "--no-trunc", "--filter", "dangling=true", check=True)
    return frozenset(listed.stdout.split())


@dataclass(frozen=True)
class BuiltImage:
    name: str
    left_dangling: frozenset[str]  # untagged images that appeared while it was built

    def clean_up(self, *, keep: bool) -> None:
        """Remove the test image and what its build left dangling (unless `keep`), then the
        containers.conf. The local base stays, and so does anything other sessions made."""
        if not keep:
            if image_exists(self.name):
                podman("rmi", "--force", self.name, check=True)
            left = sorted(self.left_dangling & dangling_images())
            if left:
                podman("rmi", "--force", *left, check=True)
        CONF.unlink(missing_ok=True)


def build_image() -> BuiltImage:
    """Build the base (once per machine) and the project's image."""
    base = subprocess.run([str(REPO / "docker" / "build-local-base.sh"), BASE_IMAGE], env=podman_env(),
                          capture_output=True, text=True, timeout=900)
    if base.returncode != 0:
        raise AssertionError(f"building the local base image failed:\n{base.stdout}\n{base.stderr[-3000:]}")
    before = dangling_images()
    podman("build", "--isolation", "chroot", "--layers=false", "-v", "/etc/ssl/certs:/etc/ssl/certs:ro",
           "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "-t", IMAGE, str(REPO), timeout=900, check=True)
    return BuiltImage(IMAGE, dangling_images() - before)


def run(image: str, *command: str, env: dict[str, str] | None = None, options: tuple[str, ...] = (),
        timeout: float = 120) -> subprocess.CompletedProcess:
    """`podman run --rm` the image on the host network with `env`; the command goes to the entrypoint."""
    flags = [f"--env={name}={value}" for name, value in (env or {}).items()]
    return podman("run", "--rm", "--pull=never", "--network=host", *flags, *options, image, *command,
                  timeout=timeout)
