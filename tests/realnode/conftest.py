"""Fixtures for the user's path on the real node: images on the node, the chart's operator, plain namespaces.

These tests run real containers: `make testenv` starts a kubelet with containerd beside the kwok nodes, and
`make images` builds the operator, runner and stand-in images and loads them onto it (docs/testing.md).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from realnode_harness import (
    CONTAINERD_SOCKET,
    IMAGES,
    Kubectl,
    Release,
    create_namespace,
    install,
    operator_restarts,
    uninstall,
)


@pytest.fixture(scope="session")
def node_images(real_node: Any) -> None:
    """The images `make images` loads are in the real node's containerd (the node's status lists them late)."""
    crictl = real_node.testenv.tool("crictl")
    listed = subprocess.run([crictl, "--runtime-endpoint", CONTAINERD_SOCKET, "images", "-o", "json"],
                            capture_output=True, text=True, timeout=60, check=True)
    have = {tag for image in json.loads(listed.stdout)["images"] for tag in image.get("repoTags") or []}
    missing = [i for i in IMAGES if not any(t == i or t.endswith("/" + i) for t in have)]
    assert not missing, f"{missing} not on {real_node.name}: run `make images` (the node has {sorted(have)})"


@pytest.fixture(scope="module")
def user_namespace(kubectl: Kubectl, real_node: Any) -> Iterator[str]:
    """One plain namespace for a module's TaskJobs (the chart's operator watches it)."""
    name = create_namespace(kubectl, "user")
    yield name
    kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture(scope="module")
def chart_operator(
    helm: Callable[..., str], kubectl: Kubectl, node_images: None, user_namespace: str
) -> Iterator[Release]:
    """The operator as a user installs it: the chart, the built image, one replica, the webhook on."""
    release = install(helm, kubectl, user_namespace)
    yield release
    restarted = operator_restarts(kubectl, release)
    uninstall(helm, kubectl, release)
    assert not restarted, f"the operator pod restarted while the module ran: {restarted}"
