#!/usr/bin/env python3
"""A snapshot of what the testenv's real node may change on this machine, for proving that stopping it
leaves the machine as it was (tests/cluster/test_real_node_cleanup.py, tests/testenv/check-down.sh).

    machine_state.py STATE_DIR > snapshot.json

Each aspect is a set of comparable lines: processes, mounts, links, iptables rules, sysctls, cgroups and
the host paths the kubelet and CNI write to.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

NODE_RUN = "/run/taskjob-testenv"
# A Docker engine on the machine (the images' builds: tests/images) changes its own processes, mounts and
# links meanwhile; none of ours has "docker" in its name or paths.
FOREIGN = re.compile(r"docker|moby", re.IGNORECASE)
# Counters and ids that change by themselves.
VOLATILE_SYSCTLS = re.compile(
    r"^(fs\.(dentry-state|file-nr|inode-nr|inode-state|quota\.)|kernel\.(ns_last_pid|random\.|pty\.nr)"
    r"|net\.netfilter\.nf_conntrack_count|net\.ipv[46]\.(conf|neigh)\.(?!all\.|default\.))"
)
EMPTY_BUILTIN = re.compile(r"^:(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) ACCEPT$")
COUNTERS = re.compile(r" \[\d+:\d+\]$")
NODE_PROCESSES = {"kubelet", "kube-proxy", "pause", "probe"}


def run(*cmd: str) -> str:
    """Return the stdout of a command that must succeed."""
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def processes(state_dir: Path) -> set[str]:
    """Command lines of the node's processes: ours by path, or the node's programs, or in its cgroups."""
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            cgroups = (proc / "cgroup").read_text()
        except OSError:
            continue  # exited meanwhile
        cmdline = " ".join(a.decode(errors="replace") for a in argv if a)
        if not cmdline or FOREIGN.search(cmdline):
            continue  # a kernel thread, or the Docker engine's
        ours = f"{state_dir}/node" in cmdline or NODE_RUN in cmdline or "kubepods" in cgroups
        if ours or Path(argv[0].decode(errors="replace")).name in NODE_PROCESSES:
            found.add(cmdline)
    return found


def machine_state(state_dir: Path) -> dict[str, set[str]]:
    """What the real node may change on this machine, each as a set of comparable lines."""
    mounts = {
        line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines() if not FOREIGN.search(line)
    }
    links = set()
    for line in run("ip", "-o", "link", "show").splitlines():
        name = line.split(": ")[1].split("@")[0]
        if not FOREIGN.search(line) and not re.search(r"master br-", line):
            links.add(name)
    rules = set()
    for save in ("iptables-save", "ip6tables-save"):
        for line in run(save).splitlines():
            line = COUNTERS.sub("", line)
            # iptables-nft creates a table, with its built-in chains empty and accepting, the first time
            # anything uses it; such a table filters nothing, as if it were not there.
            if not line.startswith(("#", "*", "COMMIT")) and not EMPTY_BUILTIN.match(line):
                rules.add(save + " " + line)
    sysctls = {line for line in run("sysctl", "-a").splitlines() if not VOLATILE_SYSCTLS.match(line)}
    cgroups = {str(p) for p in Path("/sys/fs/cgroup").glob("*/kubepods*")}
    cgroups |= {str(p) for p in Path("/sys/fs/cgroup").glob("kubepods*")}
    paths = set()
    for d in ("/var/lib/cni", "/var/log/containers", "/var/log/pods", "/run/netns", NODE_RUN):
        if Path(d).exists():
            paths |= {str(p) for p in Path(d).rglob("*")} | {d}
    return {
        "processes": processes(state_dir),
        "mounts": mounts,
        "links": links,
        "iptables": rules,
        "sysctls": sysctls,
        "cgroups": cgroups,
        "paths": paths,
    }


if __name__ == "__main__":
    snapshot = machine_state(Path(sys.argv[1]))
    json.dump({k: sorted(v) for k, v in snapshot.items()}, sys.stdout, indent=1)
