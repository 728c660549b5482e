"""The `evaluate` command's text output is for a person, in Chinese (review 51 C5): fact
labels and answers instead of keys, no blocker codes, booking items by name, and a
finding judged by a superseded edition says so. The JSON output keeps the codes."""

from __future__ import annotations

from services.common._generated.rules.v1 import rules_pb2 as pb
from services.rules.adapters.ruleset_loader import Rulebook
from services.rules.entrypoints.render import Words, decision_text


def _decision() -> pb.Decision:
    d = pb.Decision(
        enterprise_id="91330782MA2000001K",
        risk_level=pb.RISK_LEVEL_RED,
        status=pb.STATUS_PRIORITY,
        inspection_due_on="2026-12-29",
        recommended_services=["fire_safety", "first_lesson"],
        ruleset_version="rs-1",
        as_of="2026-11-29",
        valid_until="2027-11-29",
    )
    f = d.findings.add(
        clause_ref="FIRE35181:6.5",
        severity=pb.SEVERITY_MAJOR,
        text="安全出口……",
        guidance="增设安全出口",
        edition="GB 35181-2017",
        superseded=True,
        successor="GB 35181-2025《重大火灾隐患判定规则》",
        fact_keys=["fire.exit_width_ratio", "fire.exit_count_short", "x.unknown"],
    )
    f.matched_facts["fire.exit_width_ratio"].number_value = 0.0000001
    f.matched_facts["fire.exit_count_short"].bool_value = True
    f.matched_facts["x.unknown"].number_value = 1e6
    d.findings.add(
        clause_ref="GEN:training", severity=pb.SEVERITY_GENERAL, text="培训", guidance=""
    )
    d.whitelist_blockers.add(
        code="recent_penalty", reason="24个月内受到过行政处罚", ends_on="2028-06-02"
    )
    d.whitelist_blockers.add(code="risk_not_blue", reason="风险等级为红色（重大风险），须为蓝色")
    return d


def test_a_decision_reads_in_chinese_with_names_for_its_codes(rulebook: Rulebook) -> None:
    words = Words(rulebook.fact_types.definitions, rulebook.menu_names)
    text = decision_text(_decision(), "义乌市测试商场", words)
    lines = text.splitlines()
    assert lines[1] == "  风险等级  红色（重大风险）"
    assert lines[2] == "  监管状态  重点监管，2026-12-29 前完成针对性检查"
    assert (
        "      标准版本  GB 35181-2017，已被GB 35181-2025《重大火灾隐患判定规则》代替；"
        "新版条文尚未载入，仍按此版判定"
    ) in lines
    assert (
        "      依据  安全出口总净宽度÷规定值：0.0000001；安全出口数量不足：是；x.unknown：1000000"
    ) in lines
    assert "   - 24个月内受到过行政处罚（2028-06-02起不再影响）" in lines
    assert "   - 风险等级为红色（重大风险），须为蓝色" in lines
    assert "  推荐预约服务  消防安全检查指导、开工第一课" in lines
    assert "(risk_not_blue)" not in text and "RED" not in text and "PRIORITY" not in text
    assert text.count("标准版本") == 1  # the GENERAL finding is of no superseded edition


def test_without_the_rulesets_the_codes_are_shown_as_they_are() -> None:
    text = decision_text(_decision())
    assert "fire.exit_count_short：是" in text and "fire_safety、first_lesson" in text


def test_a_profile_the_service_could_not_answer_for_is_not_called_wrong() -> None:
    """Review 53 N6: the first line was the API's English (`（invalid request）`), and
    said 数据有误 whatever the code."""
    from google.rpc import status_pb2

    from services.rules.entrypoints.render import rejection

    refused = rejection(3, status_pb2.Status(code=3, message="invalid request: employees: x"))
    assert refused.splitlines()[0] == "#3：数据有误，未评估"
    failed = rejection(4, status_pb2.Status(code=14, message="rules service unavailable"))
    assert failed == "#4：未评估（评估服务未能作答）\n   rules service unavailable\n\n"
