"""The project's Docker engine and the images `make images` built in it (tests/images/build.sh).

Tests here carry @pytest.mark.docker. They need `make images` to have run: when the engine does not answer
or an image is missing they fail, saying so, rather than build images in the middle of a test run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from docker_engine import DOCKER, ENGINE_RUN, IMAGES, Engine


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """The running engine with every image of `make images`; fails when there is none."""
    bin_dir = tmp_path_factory.mktemp("docker-bin")
    if not Path(DOCKER).exists():
        pytest.fail(f"{DOCKER} is missing: run `make images` (it installs Debian's docker.io and builds the images)")
    (bin_dir / "docker").symlink_to(DOCKER)
    found = Engine(f"unix://{ENGINE_RUN / 'docker.sock'}", bin_dir)
    version = found.run(["version", "--format", "{{.Server.Version}}"], timeout=30)
    if version.returncode != 0:
        pytest.fail(f"the project's Docker engine does not answer at {found.host}: run `make images`\n{version.stderr}")
    missing = [image for image in IMAGES if found.run(["image", "inspect", image], timeout=30).returncode != 0]
    if missing:
        pytest.fail(f"images missing from the project's Docker engine: {', '.join(missing)}; run `make images`")
    return found
