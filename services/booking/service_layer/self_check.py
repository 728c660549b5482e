"""自查: the firm answers the questions of the clauses that apply to it and sees at once
what they amount to, evaluated by the rules service's stateless Evaluate.

Nothing of a self-check is stored: no register row here, and Evaluate records nothing in
the rules register (容错式指导: asking for help is never evidence for a penalty).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from services.booking.domain import messages
from services.booking.domain.rules_service import ClauseInfo, FindingInfo, Question
from services.booking.service_layer.guidance import edition_replaced, finding_view
from services.booking.service_layer.ports import BookingContext, ask_rules
from services.common.values import control_problem, trim

MAX_NUMBER = 1_000_000


@dataclass
class QuestionGroup:
    standard_title: str
    questions: list[tuple[Question, ClauseInfo]] = field(default_factory=list)
    superseded: str = ""  # the standard's edition was replaced: said once above its questions

    def by_clause(self) -> list[tuple[ClauseInfo, list[Question]]]:
        """The questions under their clause, each clause once, in the order asked: the
        page cites a clause once above its questions (review 62: the full citation under
        each question of a clause repeated it)."""
        clauses: dict[str, tuple[ClauseInfo, list[Question]]] = {}
        for q, clause in self.questions:
            clauses.setdefault(clause.ref, (clause, []))[1].append(q)
        return list(clauses.values())


def questions(ctx: BookingContext, enterprise_id: str) -> list[QuestionGroup]:
    """The questions of the clauses that apply to the firm, each once, by standard."""
    clauses = ask_rules(lambda: ctx.rules.applicable(enterprise_id))
    groups: dict[str, QuestionGroup] = {}
    seen: set[str] = set()
    for clause in clauses:
        for q in clause.questions:
            if q.key in seen or q.answer_type == "text":
                continue
            seen.add(q.key)
            group = groups.setdefault(
                clause.standard_id,
                QuestionGroup(
                    clause.standard_title,
                    superseded=edition_replaced(
                        clause.edition, clause.superseded, clause.successor
                    ),
                ),
            )
            group.questions.append((q, clause))
    return list(groups.values())


def parse_answers(
    groups: list[QuestionGroup], form: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The answered facts (unanswered ones are left out) and the errors by key."""
    answers: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for group in groups:
        for q, _ in group.questions:
            raw = trim(form.get(q.key, ""))
            if not raw:
                continue
            if q.answer_type == "yes_no":
                if raw in ("yes", "no"):
                    answers[q.key] = raw == "yes"
                else:  # "maybe", "1", "true", control characters
                    errors[q.key] = messages.SELF_CHECK_BAD_YES_NO
                continue
            number, problem = _number(raw, whole=q.answer_type == "count")
            if problem:
                errors[q.key] = problem
            else:
                answers[q.key] = int(number) if q.answer_type == "count" else number
    return answers, errors


def _number(raw: str, *, whole: bool) -> tuple[float, str]:
    """An answer's number, or why it is refused (in the firm's words). float() would
    take control characters around it for whitespace: they are refused."""
    if control_problem(raw):
        return 0, messages.SELF_CHECK_BAD_NUMBER
    try:
        number = float(raw)
    except ValueError:
        return 0, messages.SELF_CHECK_BAD_NUMBER
    if number != number:  # NaN
        return 0, messages.SELF_CHECK_BAD_NUMBER
    if number < 0:
        return 0, messages.SELF_CHECK_NEGATIVE
    if number > MAX_NUMBER:
        return 0, messages.SELF_CHECK_TOO_BIG.format(n=MAX_NUMBER)
    if whole and number % 1:
        return 0, messages.SELF_CHECK_NOT_WHOLE
    return number, ""


def evaluate(
    ctx: BookingContext, enterprise_id: str, token: str, answers: Mapping[str, Any]
) -> dict[str, Any]:
    """The findings of the firm's stored profile with the answers laid over it, MAJOR
    first, each with its pre-filled order link; `basis` and `none_text` say what the result
    rests on (the answers, or with none given, the firm's record alone)."""
    found: list[FindingInfo] = ask_rules(lambda: ctx.rules.self_check(enterprise_id, answers))
    views = [finding_view(f, token, ctx) for f in found]
    return {
        "major": [v for v in views if v["finding"].severity == "major"],
        "general": [v for v in views if v["finding"].severity != "major"],
        "answered": len(answers),
        "basis": messages.SELF_CHECK_BASIS_ANSWERS if answers else messages.SELF_CHECK_BASIS_RECORD,
        "none_text": messages.SELF_CHECK_NONE if answers else messages.SELF_CHECK_NONE_UNANSWERED,
    }
