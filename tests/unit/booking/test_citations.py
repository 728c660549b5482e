"""Review 66 point 1: how the staff pages cite a national clause (labels.cited), from the
standard's title and edition as the rules service's catalogue names them."""

from __future__ import annotations

from services.booking.entrypoints.web.labels import chinese_number, cited, environment

GM = ("工贸企业重大事故隐患判定标准", "应急管理部令第10号")
CHEM = (
    "化工和危险化学品生产经营单位重大生产安全事故隐患判定标准（试行）",
    "安监总管三〔2017〕121号",
)
FIRE = ("重大火灾隐患判定方法（直接判定要素）", "GB 35181-2017")


def test_chinese_numbers_as_clause_numbers_are_written() -> None:
    assert [chinese_number(n) for n in (1, 9, 10, 11, 15, 20, 64)] == [
        "一", "九", "十", "十一", "十五", "二十", "六十四",
    ]  # fmt: skip


def test_each_standard_is_cited_the_way_its_documents_number_it() -> None:
    assert cited("GM2023:11(3)", GM) == "《工贸企业重大事故隐患判定标准》第十一条第（三）项"
    assert cited("GM2023:11(10)", GM) == "《工贸企业重大事故隐患判定标准》第十一条第（十）项"
    assert cited("GM2023:14", GM) == "《工贸企业重大事故隐患判定标准》第十四条"
    assert cited("CHEM2017:12", CHEM) == f"《{CHEM[0]}》第十二项"
    assert cited("FIRE35181:6.2", FIRE) == "GB 35181-2017 第6.2条"


def test_without_the_catalogue_the_ref_and_a_rule_named_by_a_word_has_none() -> None:
    assert cited("GM2023:11(3)", None) == "GM2023:11(3)"  # rules never reached
    assert cited("GEN:ledger", ("安全生产一般管理要求", "")) == ""
    assert cited("SMALL:smoke", None) == ""


def test_a_sentence_from_rules_cites_its_national_clauses_for_the_firm() -> None:
    """Review 70: a blocker's reason on the firm's page cites a national clause as the
    clause lists do; a rule named by a word, a ref of an unknown standard stay as they are."""
    names = {"GM2023": GM, "FIRE35181": FIRE}
    cite_in = environment(names.get).globals["cite_in"]
    assert cite_in("发现重大隐患 GM2023:3(2)") == (
        "发现重大隐患 《工贸企业重大事故隐患判定标准》第三条第（二）项"
    )
    assert cite_in("发现重大隐患 FIRE35181:6.2，逾期") == "发现重大隐患 GB 35181-2017 第6.2条，逾期"
    assert cite_in("发现一般隐患“隐患排查治理台账”") == "发现一般隐患“隐患排查治理台账”"
    assert cite_in("发现重大隐患 XX1:3") == "发现重大隐患 XX1:3"  # not in the catalogue
