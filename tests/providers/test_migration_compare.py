"""Shadow reads' comparison: backends' renderings set aside, real differences by exact path."""

from __future__ import annotations

from typing import Any

import pytest

from providers.lifecycle import EVERY_STATUS
from providers.migration_compare import FieldDiff, compare, map_status
from providers.records import Thing, ThingStatus

DRAFT, ACTIVE, PUBLISHED, ARCHIVED = (
    ThingStatus.DRAFT,
    ThingStatus.ACTIVE,
    ThingStatus.PUBLISHED,
    ThingStatus.ARCHIVED,
)
SHOPIFY = frozenset({DRAFT, PUBLISHED, ARCHIVED})


def thing(name: str = "Tea", status: ThingStatus = DRAFT, **properties: Any) -> Thing:
    return Thing(
        id="t1", org_id="o1", type="product", name=name, status=status, properties=properties
    )


@pytest.mark.parametrize(
    ("status", "expected"),
    [(DRAFT, DRAFT), (ACTIVE, DRAFT), (PUBLISHED, PUBLISHED), (ARCHIVED, ARCHIVED)],
)
def test_map_status_onto_shopify(status: ThingStatus, expected: ThingStatus) -> None:
    assert map_status(status, SHOPIFY) is expected


@pytest.mark.parametrize("status", list(ThingStatus))
def test_map_status_onto_every_step_is_the_same(status: ThingStatus) -> None:
    assert map_status(status, EVERY_STATUS) is status


def test_map_status_takes_the_next_later_step_without_an_earlier_one() -> None:
    assert map_status(DRAFT, frozenset({PUBLISHED, ARCHIVED})) is PUBLISHED
    assert map_status(ARCHIVED, frozenset({DRAFT})) is ARCHIVED


def test_same_thing_after_wordpress_rendering() -> None:
    current = thing("Hello & welcome", body="It's “here”", count=3)
    candidate = thing(
        "<p>Hello &amp; welcome</p>\n", body="<p>It&#8217;s &#8220;here&#8221;</p>\n", count=3
    )
    assert compare(current, candidate) == []


def test_whitespace_and_tags_are_set_aside() -> None:
    assert compare(thing("A  tall\n tree "), thing("<h2>A <em>tall</em></h2>\n<p>tree</p>")) == []


def test_number_strings_equal_the_same_number() -> None:
    current = thing(price=49, weight=0.1, stock="7")
    candidate = thing(price="49.00", weight="0.10", stock=7.0)
    assert compare(current, candidate) == []
    assert compare(thing(price=49.0), thing(price="49.5")) == [
        FieldDiff("properties.price", 49, 49.5)
    ]


def test_none_empty_and_missing_are_equal() -> None:
    current = thing(subtitle=None, summary="", notes="  ", seo={"title": None})
    candidate = thing(subtitle="", summary=None, notes="<p></p>")
    assert compare(current, candidate) == []


def test_bools_are_not_numbers() -> None:
    assert compare(thing(featured=True), thing(featured=1)) == [
        FieldDiff("properties.featured", True, 1)
    ]
    assert compare(thing(featured=False), thing(featured=False)) == []


def test_a_renamed_thing_differs_by_its_name_only() -> None:
    current = thing("Green tea", price=5, tags=["tea"])
    candidate = thing("Black tea", price="5.00", tags=["tea"])
    assert compare(current, candidate) == [FieldDiff("name", "Green tea", "Black tea")]


def test_nested_paths_are_exact() -> None:
    current = thing(
        seo={"title": "Tea", "meta": {"description": "Hot"}},
        tags=["tea", "green", "loose"],
        variants=[{"sku": "T-1", "price": 5}],
    )
    candidate = thing(
        seo={"title": "Tea", "meta": {"description": "Cold"}},
        tags=["tea", "black", "loose"],
        variants=[{"sku": "T-1", "price": "6.00"}],
    )
    assert compare(current, candidate) == [
        FieldDiff("properties.seo.meta.description", "Hot", "Cold"),
        FieldDiff("properties.tags[1]", "green", "black"),
        FieldDiff("properties.variants[0].price", 5, 6),
    ]


def test_a_list_of_another_length_is_one_diff_with_both_lists() -> None:
    current = thing(tags=["tea", "<b>green</b>"])
    candidate = thing(tags=["tea", "green", "loose"])
    assert compare(current, candidate) == [
        FieldDiff("properties.tags", ["tea", "green"], ["tea", "green", "loose"])
    ]
    assert compare(thing(tags=["tea"]), thing()) == [FieldDiff("properties.tags", ["tea"], None)]
    assert compare(thing(tags=[]), thing()) == []


def test_a_value_of_another_shape_is_one_diff() -> None:
    assert compare(thing(seo={"title": "Tea"}), thing(seo="Tea")) == [
        FieldDiff("properties.seo", {"title": "Tea"}, "Tea")
    ]
    assert compare(thing(seo={"title": "Tea"}), thing()) == [
        FieldDiff("properties.seo.title", "Tea", None)
    ]


def test_keys_only_the_candidate_has_are_ignored() -> None:
    current = thing(seo={"title": "Tea"})
    candidate = thing(url="https://shop.example/tea", slug="tea", seo={"title": "Tea", "og": "x"})
    assert compare(current, candidate) == []


def test_ids_provider_and_timestamps_are_not_compared() -> None:
    candidate = Thing(
        id="t2",
        org_id="o1",
        type="product",
        name="Tea",
        provider="shopify",
        external_id="gid://shopify/Product/1",
    )
    assert compare(thing(), candidate) == []


def test_status_is_compared_on_the_candidates_steps() -> None:
    assert compare(thing(status=ACTIVE), thing(status=DRAFT), candidate_statuses=SHOPIFY) == []
    assert compare(thing(status=ACTIVE), thing(status=PUBLISHED), candidate_statuses=SHOPIFY) == [
        FieldDiff("status", "draft", "published")
    ]
    assert compare(thing(status=ACTIVE), thing(status=DRAFT)) == [
        FieldDiff("status", "active", "draft")
    ]


def test_diffs_are_sorted_by_path() -> None:
    current = thing("A", status=PUBLISHED, zeta=1, alpha=1, tags=list(range(12)))
    candidate = thing("B", status=DRAFT, zeta=2, alpha=2, tags=[*range(2), 0, *range(3, 10), 0, 11])
    assert [d.path for d in compare(current, candidate)] == [
        "name",
        "properties.alpha",
        "properties.tags[2]",
        "properties.tags[10]",
        "properties.zeta",
        "status",
    ]


def test_long_strings_are_cut_in_a_diff() -> None:
    diffs = compare(thing("x" * 500), thing("<p>" + "y" * 300 + "</p>"))
    assert diffs == [FieldDiff("name", "x" * 199 + "…", "y" * 199 + "…")]
    assert len(diffs[0].current) == 200
    assert compare(thing("x" * 500), thing("x" * 500)) == []
    assert compare(thing("x" * 300 + "a"), thing("x" * 300 + "b")) == [
        FieldDiff("name", "x" * 199 + "…", "x" * 199 + "…")
    ]


def test_wordpress_texturize_is_not_a_difference() -> None:
    typed = thing(name="Wait... 2x4 boards -- or not - sure", excerpt="More...")
    rendered = thing(
        name="Wait\u2026 2\u00d74 boards \u2013 or not \u2013 sure",
        excerpt="<p>More&#8230;</p>\n",
    )
    assert compare(typed, rendered) == []
