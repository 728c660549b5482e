"""rulesets/regions.yaml: the deployment's towns and streets with their codes (issue 14.11)."""

from __future__ import annotations

import pytest

from services.common.regions import RegionsError, load_regions, registry_from_data
from tests.support import RULESETS

YIWU = ["稠城", "江东", "稠江", "北苑", "后宅", "城西", "廿三里", "福田"]  # 街道
YIWU_TOWNS = ["佛堂", "赤岸", "义亭", "上溪", "苏溪", "大陈"]  # 镇


def test_yiwu_has_its_eight_streets_and_six_towns() -> None:
    regions = load_regions(RULESETS / "regions.yaml")
    yiwu = [t for t in regions.townships if t.county_code == "330782"]
    assert sorted(t.name for t in yiwu) == sorted(
        [f"{n}街道" for n in YIWU] + [f"{n}镇" for n in YIWU_TOWNS]
    )
    assert all(t.code.startswith("330782") and len(t.code) == 9 for t in yiwu)
    assert {t.kind for t in yiwu if t.name.endswith("镇")} == {"镇"}


def test_every_accepted_form_maps_to_the_chinese_name() -> None:
    regions = load_regions(RULESETS / "regions.yaml")
    for form in ("稠城街道", "330782001", "330782001000", " 330782001 "):
        assert regions.canonical(form) == "稠城街道"
    assert regions.canonical("稠城") is None
    assert regions.canonical("330782") is None  # a county is a filter, not a firm's region
    assert regions.area("330782") == regions.area("义乌市")
    assert regions.code_of("佛堂镇") == "330782100"


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"counties": []}, "non-empty"),
        ({"counties": [{"code": "33078", "name": "x", "townships": []}]}, "6-digit"),
        (
            {
                "counties": [
                    {
                        "code": "330782",
                        "name": "义乌市",
                        "townships": [{"code": "330109001", "name": "a"}],
                    }
                ]
            },
            "starting with the county",
        ),
        (
            {
                "counties": [
                    {
                        "code": "330782",
                        "name": "义乌市",
                        "townships": [
                            {"code": "330782001", "name": "稠城街道"},
                            {"code": "330782002", "name": "稠城街道"},
                        ],
                    }
                ]
            },
            "twice",
        ),
        ({"counties": [{"code": "330782", "name": "义乌市", "towns": []}]}, "unknown field"),
    ],
)
def test_a_malformed_file_is_refused_naming_what_is_wrong(data: object, says: str) -> None:
    with pytest.raises(RegionsError, match=says):
        registry_from_data(data)
