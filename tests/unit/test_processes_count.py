"""`processes.cpu_count`: the cores a process may use, its container's quota included
(review 44 F3: `docker run --cpus=2` on a 64-core host counted 64)."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common import processes


def _v1(root: Path, quota: str, period: str = "100000") -> Path:
    (root / "cpu").mkdir(parents=True)
    (root / "cpu" / "cpu.cfs_quota_us").write_text(quota + "\n")
    (root / "cpu" / "cpu.cfs_period_us").write_text(period + "\n")
    return root


@pytest.mark.parametrize(
    ("cpu_max", "cpus"), [("200000 100000", 2), ("150000 100000", 2), ("max 100000", None)]
)
def test_a_cgroup_v2_quota_counts_in_cpus_rounded_up(
    tmp_path: Path, cpu_max: str, cpus: int | None
) -> None:
    (tmp_path / "cpu.max").write_text(cpu_max + "\n")
    assert processes.quota_cpus(tmp_path, tmp_path / "none") == cpus


def test_a_cgroup_v1_quota_counts_too_and_minus_one_is_none(tmp_path: Path) -> None:
    none = tmp_path / "none"  # no /proc/self/cgroup: the mount roots only
    assert processes.quota_cpus(_v1(tmp_path / "a", "50000"), none) == 1
    assert processes.quota_cpus(_v1(tmp_path / "b", "300000"), none) == 3
    assert processes.quota_cpus(_v1(tmp_path / "c", "-1"), none) is None
    assert processes.quota_cpus(tmp_path / "none", none) is None  # nothing to read


def test_the_count_is_the_lesser_of_affinity_and_quota(tmp_path: Path) -> None:
    none = tmp_path / "none"
    unbounded = processes.cpu_count(tmp_path / "empty", none)
    assert unbounded >= 1
    (tmp_path / "cpu.max").write_text("100000 100000\n")
    assert processes.cpu_count(tmp_path, none) == 1
    (tmp_path / "cpu.max").write_text(f"{(unbounded + 4) * 100000} 100000\n")
    assert processes.cpu_count(tmp_path, none) == unbounded


def test_the_quota_of_the_own_cgroup_or_an_ancestor_counts(tmp_path: Path) -> None:
    """Review 45 F1: a quota set on the process's own cgroup below the mount root (a
    systemd unit's CPUQuota=, `--cgroupns=host`) or only on an ancestor (a pod's) binds
    it too; the smallest one counts."""
    own = tmp_path / "self-cgroup"
    own.write_text("0::/pod/app\n")
    (tmp_path / "pod" / "app").mkdir(parents=True)
    (tmp_path / "pod" / "cpu.max").write_text("300000 100000\n")
    (tmp_path / "pod" / "app" / "cpu.max").write_text("max 100000\n")
    assert processes.quota_cpus(tmp_path, own) == 3
    (tmp_path / "pod" / "app" / "cpu.max").write_text("150000 100000\n")
    assert processes.quota_cpus(tmp_path, own) == 2
    v1 = tmp_path / "v1"
    for folder, quota in (("lxc", "-1"), ("lxc/box", "400000")):  # v1's cpu hierarchy
        (v1 / "cpu" / folder).mkdir(parents=True)
        (v1 / "cpu" / folder / "cpu.cfs_quota_us").write_text(quota + "\n")
        (v1 / "cpu" / folder / "cpu.cfs_period_us").write_text("100000\n")
    own.write_text("12:name=systemd:/\n4:cpu,cpuacct:/lxc/box\n")
    assert processes.quota_cpus(v1, own) == 4


def test_an_unreadable_quota_is_none(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("1000 0\n")  # no kernel writes a period of 0
    assert processes.quota_cpus(tmp_path, tmp_path / "none") is None
    (tmp_path / "cpu.max").write_text("lots 100000\n")
    assert processes.quota_cpus(tmp_path, tmp_path / "none") is None
