"""Events and knowledge end to end."""

from __future__ import annotations

from tests.conftest import Api


def test_events_page_newest_first_with_filters(api: Api) -> None:
    query = """query($after: String, $type: String, $actor: ID) {
      events(first: 7, after: $after, type: $type, actorId: $actor) {
      totalCount pageInfo { hasNextPage endCursor } edges { node { type timestamp } } } }"""
    seen, after = [], None
    while True:
        page = api.data(query, {"after": after})["events"]
        seen += [e["node"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(seen) == page["totalCount"] > 20
    stamps = [e["timestamp"] for e in seen]
    assert stamps == sorted(stamps, reverse=True)
    created = api.data(query, {"type": "entity_created"})["events"]
    assert created["totalCount"] == 9
    uma = api.data("""{ organization { members { role person { id } } } }""")["organization"][
        "members"
    ]
    uma_id = next(m["person"]["id"] for m in uma if m["role"] == "ORG_USER")
    by_uma = api.data(query, {"actor": uma_id})["events"]
    assert by_uma["totalCount"] > 0
    bad = api.error('{ events(type: "nope") { totalCount } }')
    assert bad["extensions"]["code"] == "BAD_USER_INPUT"
    assert api.error('{ events(targetId: "x") { totalCount } }')["extensions"]["code"] == (
        "BAD_USER_INPUT"
    )


def test_knowledge_search_and_create(api: Api) -> None:
    found = api.data("""{ knowledgeSearch(query: "LOGO") { mode hits { knowledge { kind text
      labels source { ... on Document { name } } } } } }""")["knowledgeSearch"]
    assert found["mode"] == "LEXICAL"  # no embedding provider: said, not pretended
    assert [h["knowledge"] for h in found["hits"]] == [
        {
            "kind": "chunk",
            "text": "Use the logo with care.",
            "labels": ["guide"],
            "source": {"name": "Brand guidelines"},
        }
    ]
    assert (
        api.data('{ knowledgeSearch(query: "logo") { hits { score } } }', org="globex")[
            "knowledgeSearch"
        ]["hits"]
        == []
    )
    course = api.data('{ things(type: "course") { edges { node { id } } } }')["things"]["edges"][0][
        "node"
    ]["id"]
    made = api.data(
        """mutation($s: ID) { createKnowledge(input: {kind: "label",
      text: "printing", sourceId: $s}) { id kind source { id } } }""",
        {"s": course},
    )
    assert made["createKnowledge"]["source"]["id"] == course
    assert api.error('{ knowledgeSearch(query: "  ") { mode } }')["extensions"]["code"] == (
        "BAD_USER_INPUT"
    )
