"""Thresholds live in rulesets/: editing one changes the decision with no code edited."""

from __future__ import annotations

import shutil
from pathlib import Path

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.rules.adapters.ruleset_loader import load_rulebook
from services.rules.entrypoints import grpc_server
from services.rules.entrypoints.convert import profile_from_json
from tests.support import RULESETS, profile


def _decide(rules_dir: Path, data: dict) -> pb.Decision:  # type: ignore[type-arg]
    import grpc

    from services.common._generated.rules.v1 import rules_pb2_grpc

    server, port = grpc_server.create_server(load_rulebook(rules_dir))
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = rules_pb2_grpc.RulesServiceStub(channel)
            return stub.Evaluate(
                pb.EvaluateRequest(profile=profile_from_json(data), as_of="2026-06-30"), timeout=10
            )
    finally:
        server.stop(None)


def test_editing_policy_file_changes_the_decision(tmp_path: Path) -> None:
    rules_dir = tmp_path / "rulesets"
    shutil.copytree(RULESETS, rules_dir)
    firm = profile(merchant_score=10)
    assert _decide(rules_dir, firm).status == pb.STATUS_WHITELIST
    policy = rules_dir / "policy.yaml"
    policy.write_text(
        policy.read_text(encoding="utf-8").replace(
            "min_merchant_score: 10", "min_merchant_score: 11"
        ),
        encoding="utf-8",
    )
    decision = _decide(rules_dir, firm)
    assert decision.status == pb.STATUS_ROUTINE
    assert [b.code for b in decision.whitelist_blockers] == ["merchant_score"]


def test_policy_switch_opens_the_white_list_to_all_firms(tmp_path: Path) -> None:
    rules_dir = tmp_path / "rulesets"
    shutil.copytree(RULESETS, rules_dir)
    firm = profile(specialized_sme=False)
    assert _decide(rules_dir, firm).status == pb.STATUS_ROUTINE
    policy = rules_dir / "policy.yaml"
    policy.write_text(
        policy.read_text(encoding="utf-8").replace(
            "specialized_sme_only: true", "specialized_sme_only: false"
        ),
        encoding="utf-8",
    )
    assert _decide(rules_dir, firm).status == pb.STATUS_WHITELIST


def test_editing_a_cap_table_changes_the_cap(tmp_path: Path) -> None:
    rules_dir = tmp_path / "rulesets"
    shutil.copytree(RULESETS, rules_dir)
    firm = profile(specialized_sme=False, standardization_grade=3)
    assert _decide(rules_dir, firm).inspection_cap_per_year == 4
    policy = rules_dir / "policy.yaml"
    policy.write_text(
        policy.read_text(encoding="utf-8").replace(
            "ordinary: {1: 1, 2: 2, 3: 4, 0: 6}", "ordinary: {1: 1, 2: 2, 3: 3, 0: 6}"
        ),
        encoding="utf-8",
    )
    assert _decide(rules_dir, firm).inspection_cap_per_year == 3


def test_the_standardization_blocker_words_the_policy_number_it_applies(tmp_path: Path) -> None:
    """Review 51 C3: the exemption is for fewer than N employees (`< N`); a firm of exactly
    N is blocked, so the reason must not call it exempt (以下 includes the number)."""
    rules_dir = tmp_path / "rulesets"
    shutil.copytree(RULESETS, rules_dir)
    firm = profile(employees=50, standardization_grade=0)
    [blocker] = _decide(rules_dir, firm).whitelist_blockers
    assert blocker.code == "standardization"
    assert blocker.reason == (
        "未取得安全生产标准化等级，须为一级、二级或三级（员工少于50人且不涉高危领域的除外）"
    )
    policy = rules_dir / "policy.yaml"
    policy.write_text(
        policy.read_text(encoding="utf-8").replace(
            "small_firm_employees_below: 50", "small_firm_employees_below: 51"
        ),
        encoding="utf-8",
    )
    assert _decide(rules_dir, firm).status == pb.STATUS_WHITELIST  # 50 < 51: exempt now
    firm = profile(employees=51, standardization_grade=0)
    [blocker] = _decide(rules_dir, firm).whitelist_blockers
    assert blocker.reason == (
        "未取得安全生产标准化等级，须为一级、二级或三级（员工少于51人且不涉高危领域的除外）"
    )


def _edited(tmp_path: Path, old: str, new: str) -> Path:
    rules_dir = tmp_path / "rulesets"
    shutil.copytree(RULESETS, rules_dir)
    policy = rules_dir / "policy.yaml"
    text = policy.read_text(encoding="utf-8")
    assert old in text
    policy.write_text(text.replace(old, new), encoding="utf-8")
    return rules_dir


def test_the_credit_blocker_names_the_ratings_the_policy_accepts(tmp_path: Path) -> None:
    """Review 53 N7: with `credit_ratings: [A]` a B firm was told 须为A或B."""
    rules_dir = _edited(tmp_path, "credit_ratings: [A, B]", "credit_ratings: [A]")
    [blocker] = _decide(rules_dir, profile(credit_rating="B")).whitelist_blockers
    assert (blocker.code, blocker.reason) == ("credit_rating", "信用等级为B，须为A")
    [unrated] = _decide(rules_dir, profile(credit_rating=None)).whitelist_blockers
    assert unrated.reason == "未评定信用等级，须为A"


def test_the_standardization_blocker_names_the_grade_and_those_accepted(
    tmp_path: Path,
) -> None:
    """Review 53 N7: with grades [1, 2] a grade-3 firm was told 未取得安全生产标准化等级."""
    rules_dir = _edited(
        tmp_path, "standardization_grades: [1, 2, 3]", "standardization_grades: [1, 2]"
    )
    firm = profile(employees=80, standardization_grade=3)
    [blocker] = _decide(rules_dir, firm).whitelist_blockers
    assert (blocker.code, blocker.reason) == (
        "standardization",
        "安全生产标准化等级为三级，须为一级或二级（员工少于50人且不涉高危领域的除外）",
    )
