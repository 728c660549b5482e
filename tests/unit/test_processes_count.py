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
    assert processes.quota_cpus(tmp_path) == cpus


def test_a_cgroup_v1_quota_counts_too_and_minus_one_is_none(tmp_path: Path) -> None:
    assert processes.quota_cpus(_v1(tmp_path / "a", "50000")) == 1
    assert processes.quota_cpus(_v1(tmp_path / "b", "300000")) == 3
    assert processes.quota_cpus(_v1(tmp_path / "c", "-1")) is None
    assert processes.quota_cpus(tmp_path / "none") is None  # nothing to read


def test_the_count_is_the_lesser_of_affinity_and_quota(tmp_path: Path) -> None:
    unbounded = processes.cpu_count(tmp_path / "none")
    assert unbounded >= 1
    (tmp_path / "cpu.max").write_text("100000 100000\n")
    assert processes.cpu_count(tmp_path) == 1
    (tmp_path / "cpu.max").write_text(f"{(unbounded + 4) * 100000} 100000\n")
    assert processes.cpu_count(tmp_path) == unbounded
