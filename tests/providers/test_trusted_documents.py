"""Trusted documents and the safelist mode, over every engine of the native store."""

from __future__ import annotations

import hashlib

import pytest

from providers.errors import InvalidInputError, NotFoundError
from providers.native import EventQuery, NativeStore
from providers.native.trusted_documents import MAX_DOCUMENT_BYTES, MAX_DOCUMENTS
from providers.records import Role, SafelistMode
from tests.providers.test_store_conformance import make_org

QUERY = "query Things { things { totalCount } }"
MUTATION = 'mutation Make { createThing(input: {type: "task", name: "x"}) { id } }'


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def test_scope_org_wide_key_scoped_and_other_org(store: NativeStore) -> None:
    acme, owner = await make_org(store, "acme")
    other, _ = await make_org(store, "other")
    key, _ = await store.api_keys.create(acme.id, actor_ref=owner, name="k", role=Role.ORG_USER)
    second, _ = await store.api_keys.create(acme.id, actor_ref=owner, name="k2", role=Role.ORG_USER)
    docs = store.trusted_documents
    [org_wide] = await docs.register(
        acme.id, actor_ref=owner, documents=[("Things", QUERY)], api_key_id=None
    )
    [scoped] = await docs.register(
        acme.id, actor_ref=owner, documents=[(None, MUTATION)], api_key_id=key.id
    )
    assert org_wide.sha256 == sha(QUERY) and org_wide.api_key_id is None
    assert scoped.api_key_id == key.id and scoped.name is None and scoped.created_by == owner

    # Org-wide documents are trusted for every request of the organization ...
    for api_key_id in (None, key.id, second.id):
        assert await docs.is_trusted(acme.id, sha(QUERY), api_key_id)
        assert await docs.get_text(acme.id, sha(QUERY), api_key_id) == QUERY
    # ... a key-scoped one only for its key ...
    assert await docs.is_trusted(acme.id, sha(MUTATION), key.id)
    assert await docs.get_text(acme.id, sha(MUTATION), key.id) == MUTATION
    assert not await docs.is_trusted(acme.id, sha(MUTATION), None)
    assert not await docs.is_trusted(acme.id, sha(MUTATION), second.id)
    assert await docs.get_text(acme.id, sha(MUTATION), second.id) is None
    # ... and never for another organization, whatever key id it names.
    assert not await docs.is_trusted(other.id, sha(QUERY), None)
    assert not await docs.is_trusted(other.id, sha(MUTATION), key.id)
    assert await docs.get_text(other.id, sha(QUERY), key.id) is None


async def test_hot_path_is_one_query_each(store: NativeStore) -> None:
    acme, owner = await make_org(store)
    await store.trusted_documents.register(
        acme.id, actor_ref=owner, documents=[(None, QUERY)], api_key_id=None
    )
    for check in (
        store.trusted_documents.safelist_mode(acme.id),
        store.trusted_documents.is_trusted(acme.id, sha(QUERY), "somekey"),
        store.trusted_documents.get_text(acme.id, sha(QUERY), None),
    ):
        before = store.engine.queries
        await check
        assert store.engine.queries - before == 1


async def test_register_is_idempotent_and_writes_one_event(store: NativeStore) -> None:
    acme, owner = await make_org(store)
    docs = store.trusted_documents
    first = await docs.register(
        acme.id,
        actor_ref=owner,
        documents=[("Things", QUERY), ("Again", QUERY), ("Make", MUTATION)],
        api_key_id=None,
    )
    assert [d.sha256 for d in first] == [sha(QUERY), sha(QUERY), sha(MUTATION)]
    assert first[0] == first[1] and first[1].name == "Things"
    again = await docs.register(
        acme.id, actor_ref=owner, documents=[("Renamed", QUERY)], api_key_id=None
    )
    assert again == [first[0]]
    page = await docs.page(acme.id)
    assert page.total_count == 2
    events = await store.events.page(acme.id, EventQuery(type="trusted_documents_registered"))
    assert events.total_count == 1
    metadata = events.items[0].metadata
    assert metadata["count"] == 2 and set(metadata["hashes"]) == {sha(QUERY), sha(MUTATION)}
    assert metadata["scope"] == "organization" and QUERY not in str(metadata)
    assert events.items[0].actor_ref == owner


async def test_remove_and_register_again(store: NativeStore) -> None:
    acme, owner = await make_org(store)
    key, _ = await store.api_keys.create(acme.id, actor_ref=owner, name="k", role=Role.ORG_USER)
    docs = store.trusted_documents
    await docs.register(acme.id, actor_ref=owner, documents=[(None, QUERY)], api_key_id=None)
    await docs.register(acme.id, actor_ref=owner, documents=[(None, QUERY)], api_key_id=key.id)
    # Both scopes go; an unknown hash is no error; upper case hex is the same hash.
    removed = await docs.remove(acme.id, actor_ref=owner, sha256s=[sha(QUERY).upper(), "0" * 64])
    assert removed == 2
    assert not await docs.is_trusted(acme.id, sha(QUERY), key.id)
    assert (await docs.page(acme.id)).total_count == 0
    assert await docs.remove(acme.id, actor_ref=owner, sha256s=[sha(QUERY)]) == 0
    [back] = await docs.register(
        acme.id, actor_ref=owner, documents=[("Back", QUERY)], api_key_id=None
    )
    assert back.name == "Back" and await docs.is_trusted(acme.id, sha(QUERY), None)
    removals = await store.events.page(acme.id, EventQuery(type="trusted_documents_removed"))
    assert removals.total_count == 1
    assert removals.items[0].metadata == {"count": 2, "hashes": [sha(QUERY)]}
    with pytest.raises(InvalidInputError, match="SHA-256"):
        await docs.remove(acme.id, actor_ref=owner, sha256s=["not-a-hash"])


async def test_register_checks_each_document(store: NativeStore) -> None:
    acme, owner = await make_org(store)
    other, other_owner = await make_org(store, "other")
    foreign, _ = await store.api_keys.create(
        other.id, actor_ref=other_owner, name="k", role=Role.ORG_USER
    )
    docs = store.trusted_documents

    async def register(documents: list[tuple[str | None, str]], key: str | None = None) -> None:
        await docs.register(acme.id, actor_ref=owner, documents=documents, api_key_id=key)

    with pytest.raises(InvalidInputError, match="document 1 is not GraphQL") as bad:
        await register([(None, QUERY), (None, "query {")])
    assert bad.value.extensions == {"field": "documents", "index": 1}
    with pytest.raises(InvalidInputError, match="document 0 is not an operation"):
        await register([(None, "type Query { x: Int }")])
    with pytest.raises(InvalidInputError, match=r"document 0 is \d+ bytes"):
        await register([(None, "{ me { role } }" + " " * MAX_DOCUMENT_BYTES)])
    with pytest.raises(InvalidInputError, match="1 to 100"):
        await register([(None, f"{{ a{i}: me {{ role }} }}") for i in range(MAX_DOCUMENTS + 1)])
    with pytest.raises(InvalidInputError, match="1 to 100"):
        await register([])
    with pytest.raises(NotFoundError, match="API key"):
        await register([(None, QUERY)], foreign.id)
    key, _ = await store.api_keys.create(acme.id, actor_ref=owner, name="k", role=Role.ORG_USER)
    await store.api_keys.revoke(acme.id, key.id, actor_ref=owner)
    with pytest.raises(NotFoundError, match="revoked"):
        await register([(None, QUERY)], key.id)
    assert (await docs.page(acme.id)).total_count == 0


async def test_pages_newest_first(store: NativeStore) -> None:
    acme, owner = await make_org(store)
    docs = store.trusted_documents
    made = []
    for i in range(5):
        made += await docs.register(
            acme.id,
            actor_ref=owner,
            documents=[(None, f"{{ a{i}: me {{ role }} }}")],
            api_key_id=None,
        )
    seen, after = [], None
    while True:
        page = await docs.page(acme.id, first=2, after=after)
        assert page.total_count == 5
        seen += page.items
        if not page.has_next_page:
            break
        after = page.cursors[-1]
    assert [d.sha256 for d in seen] == [d.sha256 for d in reversed(made)]


async def test_safelist_mode_per_organization(store: NativeStore) -> None:
    acme, owner = await make_org(store)
    other, _ = await make_org(store, "other")
    docs = store.trusted_documents
    assert await docs.safelist_mode(acme.id) is SafelistMode.OFF
    await docs.set_safelist_mode(acme.id, actor_ref=owner, mode=SafelistMode.API_KEYS)
    await docs.set_safelist_mode(acme.id, actor_ref=owner, mode=SafelistMode.API_KEYS)
    await docs.set_safelist_mode(acme.id, actor_ref=owner, mode=SafelistMode.ALL)
    assert await docs.safelist_mode(acme.id) is SafelistMode.ALL
    assert await docs.safelist_mode(other.id) is SafelistMode.OFF
    events = await store.events.page(acme.id, EventQuery(type="safelist_mode_changed"))
    assert [e.metadata for e in reversed(events.items)] == [
        {"from": "off", "to": "api_keys"},
        {"from": "api_keys", "to": "all"},
    ]
    assert all(e.actor_ref == owner for e in events.items)
