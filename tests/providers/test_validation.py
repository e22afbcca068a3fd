"""Input hygiene below the HTTP layer: what reaches the store from any path (CLI, upstreams)."""

from __future__ import annotations

import pytest

from providers import validation
from providers.errors import InvalidInputError


@pytest.mark.parametrize("value", ["a\ud800b", "\udfff", "x\u0000", "\ufeffname", " \u200b "])
def test_names_refuse_surrogates_controls_and_invisible_characters(value: str) -> None:
    with pytest.raises(InvalidInputError):
        validation.name(value)


def test_text_refuses_lone_surrogates_but_keeps_everything_else() -> None:
    with pytest.raises(InvalidInputError):
        validation.text("body \udc00")
    assert validation.text("emoji 😀, tabs\tand\nlines") == "emoji 😀, tabs\tand\nlines"
