"""The embedding provider against the emulator of OpenAI's embeddings API: batches, order,
dimensions, blanks, limits, retries, errors; and an organization configuring it through
GraphQL, its key sealed and never said."""

from __future__ import annotations

import base64
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from providers.embeddings import MAX_REQUEST_CHARS, EmbeddingProvider, EmbeddingsConfig
from providers.errors import (
    InvalidInputError,
    ProviderAuthError,
    ProviderRateLimitedError,
    ProviderResponseError,
    ProviderUnavailableError,
)
from providers.registry import ProviderPool, validate_config
from tests.conftest import Api
from tests.emulators import Fault, serve
from tests.emulators import embeddings as emulated
from tests.emulators.embeddings import EmbeddingsEmulator, embedding

KEY = "sk-test-embeddings-k3y-never-said-0123456789"
MODEL = "text-embedding-3-small"


@pytest.fixture
def emulator() -> Iterator[tuple[EmbeddingsEmulator, str]]:
    served = EmbeddingsEmulator(api_key=KEY)
    with serve(served.app) as url:
        yield served, url


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def embedder(url: str, client: httpx.AsyncClient, **config: Any) -> EmbeddingProvider:
    values = {"base_url": f"{url}/v1", "api_key": KEY, "model": MODEL, **config}
    return EmbeddingProvider("org1", EmbeddingsConfig.model_validate(values), client)


def cosine(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


# -- batches, order, dimensions ------------------------------------------------------------


async def test_texts_go_in_batches_and_come_back_in_order(
    emulator: tuple[EmbeddingsEmulator, str], client: httpx.AsyncClient
) -> None:
    served, url = emulator
    texts = [f"note {i}: a comfy couch, number {i}" for i in range(150)]
    provider = embedder(url, client)
    assert provider.dimension is None  # not configured: learned from the first answer
    vectors = await provider.embed(texts)
    assert sorted(served.batches) == [22, 64, 64]
    assert vectors == [embedding(t) for t in texts]
    assert provider.model == MODEL and provider.dimension == 256
    assert {call.dimensions for call in served.calls} == {None}  # not sent when not set
    assert await provider.embed([]) == [] and served.requests == 3


async def test_dimensions_are_sent_and_every_vector_has_them(
    emulator: tuple[EmbeddingsEmulator, str], client: httpx.AsyncClient
) -> None:
    served, url = emulator
    provider = embedder(url, client, dimensions=64, batch_size=2)
    assert provider.dimension == 64  # known before any answer
    vectors = await provider.embed(["sofa", "car", "hammock"])
    assert [len(v) for v in vectors] == [64, 64, 64] and provider.dimension == 64
    assert [call.dimensions for call in served.calls] == [64, 64]
    packed = embedder(url, client, dimensions=64, encoding_format="base64")
    assert np.allclose(await packed.embed(["sofa", "car", "hammock"]), vectors, atol=1e-6)
    assert served.calls[-1].encoding_format == "base64"


def answer(*lengths: int) -> bytes:
    """An embeddings answer with vectors of these lengths, as a server of its own mind sends."""
    data = [
        {"object": "embedding", "index": i, "embedding": [0.5] * n} for i, n in enumerate(lengths)
    ]
    usage = {"prompt_tokens": 1, "total_tokens": 1}
    return json.dumps({"object": "list", "data": data, "model": MODEL, "usage": usage}).encode()


async def test_vectors_of_another_length_or_number_are_a_bad_response(
    emulator: tuple[EmbeddingsEmulator, str], client: httpx.AsyncClient
) -> None:
    served, url = emulator
    served.fault = Fault(status=200, body=answer(768), times=1)  # `dimensions` ignored
    with pytest.raises(ProviderResponseError, match="768 dimensions where 64 were expected"):
        await embedder(url, client, dimensions=64).embed(["sofa"])
    provider = embedder(url, client)
    await provider.embed(["sofa"])  # 256, from now on
    served.fault = Fault(status=200, body=answer(128), times=1)
    with pytest.raises(ProviderResponseError, match="128 dimensions where 256"):
        await provider.embed(["car"])
    served.fault = Fault(status=200, body=answer(256), times=1)
    with pytest.raises(ProviderResponseError, match="another number of vectors"):
        await provider.embed(["car", "sofa"])
    assert provider.dimension == 256


async def test_the_emulator_is_semantic_enough_to_search_with(
    emulator: tuple[EmbeddingsEmulator, str], client: httpx.AsyncClient
) -> None:
    _, url = emulator
    couch, sofa, car, other_model = await embedder(url, client).embed(
        ["A comfy couch for the garden", "cozy sofas for your backyard", "a fast car", "x"]
    )
    assert cosine(couch, sofa) > 0.99 and abs(cosine(couch, car)) < 0.3
    [large] = await embedder(url, client, model="text-embedding-3-large").embed(["couch"])
    assert abs(cosine(large[:256], embedding("couch"))) < 0.3  # another model, other vectors
    assert other_model == embedding("x")


# -- what is never sent --------------------------------------------------------------------


async def test_blank_texts_are_zeros_and_never_sent(
    emulator: tuple[EmbeddingsEmulator, str], client: httpx.AsyncClient
) -> None:
    served, url = emulator
    provider = embedder(url, client)
    empty, sofa, blank = await provider.embed(["", "sofa", " \n\t"])
    assert [call.inputs for call in served.calls] == [["sofa"]]
    assert empty == blank == [0.0] * 256 and sofa == embedding("sofa")

    fresh = embedder(url, client)  # nothing known yet: one request learns the length
    assert await fresh.embed(["", " "]) == [[0.0] * 256] * 2
    assert [call.inputs for call in served.calls[1:]] == [["ping"]]
    sized = embedder(url, client, dimensions=32)  # known from the config: nothing asked
    assert await sized.embed([""]) == [[0.0] * 32] and len(served.calls) == 2


async def test_long_texts_are_cut_and_requests_kept_under_the_token_limit(
    emulator: tuple[EmbeddingsEmulator, str], client: httpx.AsyncClient
) -> None:
    served, url = emulator
    provider = embedder(url, client)
    long = "sofa " * 20_000  # 100,000 characters: 25,000 tokens to the API, over its 8192
    [vector] = await provider.embed([long])
    assert served.calls[0].inputs == [long[:24_000]] and vector == embedding(long[:24_000])

    await provider.embed([long] * 64)  # 64 x 24,000 characters: over 300,000 tokens at once
    sizes = [sum(len(str(t)) for t in call.inputs) for call in served.calls[1:]]
    assert len(sizes) == 3 and max(sizes) <= MAX_REQUEST_CHARS and served.batches[1:] != [64]


def test_the_config_keeps_within_the_api() -> None:
    base = {"base_url": "https://api.openai.com/v1", "model": MODEL}
    with pytest.raises(InvalidInputError, match="batch_size") as error:
        validate_config("embeddings", {**base, "batch_size": 2049}, [])
    assert error.value.extensions["field"] == "batch_size"
    with pytest.raises(InvalidInputError, match="owns no thing types"):
        validate_config("embeddings", base, ["blog_post"])
    ollama = validate_config("embeddings", {**base, "base_url": "http://localhost:11434/v1"}, [])
    assert "api_key" not in ollama and ollama["batch_size"] == 64


# -- limits, retries, errors ---------------------------------------------------------------


async def test_a_429_waits_its_retry_after(
    emulator: tuple[EmbeddingsEmulator, str], client: httpx.AsyncClient
) -> None:
    served, url = emulator
    served.limit, served.window = 2, 1.0
    provider = embedder(url, client, batch_size=1, concurrency=1)
    started = time.monotonic()
    vectors = await provider.embed(["sofa", "car", "hammock"])
    assert served.rate_limited == 1 and time.monotonic() - started >= 1.0  # "retry-after: 1"
    assert vectors == [embedding(t) for t in ("sofa", "car", "hammock")]


async def test_without_retry_after_the_openai_reset_header_says_how_long(
    emulator: tuple[EmbeddingsEmulator, str], client: httpx.AsyncClient
) -> None:
    served, url = emulator
    served.limit, served.window, served.send_retry_after = 1, 0.5, False
    provider = embedder(url, client, batch_size=1, concurrency=1)
    started = time.monotonic()
    await provider.embed(["sofa", "car"])
    waited = time.monotonic() - started
    assert served.rate_limited == 1 and 0.3 <= waited < 0.95  # "x-ratelimit-reset-requests"


async def test_a_limit_past_the_deadline_is_rate_limited_at_once(
    emulator: tuple[EmbeddingsEmulator, str], client: httpx.AsyncClient
) -> None:
    served, url = emulator
    served.limit = 1  # a minute's window
    provider = embedder(url, client)
    await provider.embed(["sofa"])
    started = time.monotonic()
    with pytest.raises(ProviderRateLimitedError) as error:
        await provider.embed(["car"])
    assert time.monotonic() - started < 1.0 and 55 <= error.value.extensions["retryAfter"] <= 60
    assert error.value.retryable and served.rate_limited == 1


async def test_a_wrong_key_is_an_auth_error_that_never_says_the_key(
    emulator: tuple[EmbeddingsEmulator, str],
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    served, url = emulator
    wrong = "sk-wrong-but-secret-key-9876543210"
    provider = embedder(url, client, api_key=wrong)
    with pytest.raises(ProviderAuthError) as error:
        await provider.embed(["sofa"])
    health = await provider.health()
    assert health.status == "offline" and "refused the API key" in health.detail
    said = f"{error.value} {error.value.extensions} {health} {caplog.text}"
    said += repr(EmbeddingsConfig.model_validate({"base_url": url, "api_key": wrong, "model": "m"}))
    assert wrong not in said and KEY not in said and wrong[3:-4] not in said
    assert served.requests == 2  # a refusal is not tried again


async def test_server_errors_are_retried_then_unavailable(
    emulator: tuple[EmbeddingsEmulator, str], client: httpx.AsyncClient
) -> None:
    served, url = emulator
    failing = b'{"error": {"message": "The server had an error", "type": "server_error"}}'
    served.fault = Fault(status=500, body=failing, times=1)
    assert await embedder(url, client).embed(["sofa"]) == [embedding("sofa")]
    assert served.requests == 2
    served.fault = Fault(status=503, body=failing)
    with pytest.raises(ProviderUnavailableError):
        await embedder(url, client).embed(["sofa"])
    assert served.requests == 2 + 3  # the upstream policy's three attempts


async def test_an_unknown_model_is_a_configuration_error(
    emulator: tuple[EmbeddingsEmulator, str], client: httpx.AsyncClient
) -> None:
    _, url = emulator
    with pytest.raises(InvalidInputError, match="does not serve the model 'text-embedding-4'"):
        await embedder(url, client, model="text-embedding-4").embed(["sofa"])
    health = await embedder(url, client, model="text-embedding-4").health()
    assert health.status == "offline" and "check model and base_url" in health.detail
    assert (await embedder(url, client).health()).status == "online"


# -- the emulator holds to the API ---------------------------------------------------------


def test_the_emulator_answers_and_refuses_as_the_api_does(
    emulator: tuple[EmbeddingsEmulator, str],
) -> None:
    _, url = emulator
    auth = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=f"{url}/v1", headers=auth) as api:
        answer = api.post("/embeddings", json={"input": "sofa", "model": MODEL})
        body = answer.json()
        assert body["object"] == "list" and body["model"] == MODEL
        assert body["data"][0]["object"] == "embedding" and body["data"][0]["index"] == 0
        assert body["usage"] == {"prompt_tokens": 1, "total_tokens": 1}
        assert answer.headers["x-ratelimit-remaining-requests"].isdigit()
        packed = api.post(
            "/embeddings",
            json={"input": ["sofa"], "model": MODEL, "encoding_format": "base64"},
        ).json()["data"][0]["embedding"]
        unpacked = np.frombuffer(base64.b64decode(packed), dtype="<f4")
        assert np.allclose(unpacked, embedding("sofa"), atol=1e-6)
        tokens = api.post("/embeddings", json={"input": [[1, 2], [3]], "model": MODEL})
        assert len(tokens.json()["data"]) == 2

        def refusal(status: int, payload: dict[str, Any]) -> dict[str, Any]:
            answer = api.post("/embeddings", json=payload)
            assert answer.status_code == status, answer.text
            error: dict[str, Any] = answer.json()["error"]
            assert set(error) == {"message", "type", "param", "code"}
            return error

        assert "'$.input' is invalid" in refusal(400, {"input": "", "model": MODEL})["message"]
        assert "'$.input' is invalid" in refusal(400, {"input": [], "model": MODEL})["message"]
        many = refusal(400, {"input": ["a"] * 2049, "model": MODEL})
        assert "max number of inputs is 2048" in many["message"]
        long = refusal(400, {"input": "a" * 40_000, "model": MODEL})
        assert "maximum context length is 8192 tokens" in long["message"]
        total = refusal(400, {"input": ["a" * 30_000] * 41, "model": MODEL})
        assert total["code"] == "max_tokens_per_request"
        assert refusal(404, {"input": "a", "model": "gpt-9"})["code"] == "model_not_found"
        ada = {"input": "a", "model": "text-embedding-ada-002", "dimensions": 8}
        assert "does not support specifying dimensions" in refusal(400, ada)["message"]
        assert refusal(400, {"input": "a", "model": MODEL, "dimensions": 1537})["param"] == (
            "dimensions"
        )
        assert "Unrecognized" in refusal(400, {"input": "a", "model": MODEL, "x": 1})["message"]
        models = api.get("/models").json()
        assert MODEL in {m["id"] for m in models["data"]} and models["object"] == "list"
    with httpx.Client(base_url=f"{url}/v1") as anonymous:
        missing = anonymous.post("/embeddings", json={"input": "a", "model": MODEL})
        assert missing.status_code == 401 and missing.json()["error"]["code"] is None
        wrong = anonymous.post(
            "/embeddings",
            json={"input": "a", "model": MODEL},
            headers={"Authorization": "Bearer sk-abcdefghijklmnop"},
        )
        error = wrong.json()["error"]
        assert error["code"] == "invalid_api_key" and "sk-abcdefghijklmnop" not in error["message"]


def test_the_emulator_documents_every_synonym_group() -> None:
    doc = emulated.__doc__ or ""
    for head, words in emulated.SYNONYMS.items():
        assert f"{head}: {' '.join(words)}" in " ".join(doc.split()), head
    assert emulated.concepts("The puppies sleep on couches") == ["dog", "sleep", "sofa"]
    shortened = embedding("sofa", dimensions=8)
    start = np.array(embedding("sofa", dimensions=1536)[:8])
    assert np.allclose(shortened, start / np.linalg.norm(start))
    assert math.isclose(float(np.linalg.norm(embedding("anything at all"))), 1.0)


# -- an organization configures it ---------------------------------------------------------

CONFIGURE = """mutation($input: ConfigureProviderInput!) { configureProvider(input: $input) {
  provider routes status capabilities { read search write batchSize } } }"""
PROVIDERS = "{ providers { provider routes status lastHealthCheck { status detail } } }"


def configure(api: Api, url: str, **changes: Any) -> dict[str, Any]:
    config = {"base_url": f"{url}/v1", "api_key": KEY, "model": MODEL, "dimensions": 128}
    variables = {"input": {"provider": "embeddings", "routes": [], "config": config | changes}}
    return api.post(CONFIGURE, variables)


def test_an_organization_configures_its_embedder_with_the_key_sealed(
    api: Api, emulator: tuple[EmbeddingsEmulator, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    served, url = emulator
    refused = configure(api, url, api_key="sk-wrong-but-secret-key-9876543210")
    assert "nothing was saved" in refused["errors"][0]["message"]
    assert "refused the API key" in refused["errors"][0]["message"]
    body = configure(api, url)
    assert "errors" not in body, body
    assert body["data"]["configureProvider"] == {
        "provider": "embeddings",
        "routes": [],
        "status": "online",
        "capabilities": {"read": False, "search": False, "write": False, "batchSize": 2048},
    }
    [row] = api.run(api.store.engine.find, "provider_configs", [])
    assert set(row["config"]["api_key"]) == {"kid", "nonce", "ct"} and KEY not in str(row)
    assert row["config"]["model"] == MODEL and row["config"]["dimensions"] == 128

    [listed] = api.data(PROVIDERS)["providers"]
    assert listed["provider"] == "embeddings" and listed["status"] == "online"
    tested = api.data('mutation { testProviderConnection(provider: "embeddings") { status } }')
    assert tested["testProviderConnection"]["status"] == "online"
    assert served.calls[-1].inputs == ["ping"]
    unnamed = api.error('{ thing(id: "thing.embeddings.x1") { id } }')
    assert unnamed["extensions"]["code"] == "BAD_USER_INPUT"
    assert api.data('{ things(type: "course") { totalCount } }')["things"]["totalCount"] == 1

    pool: ProviderPool = api.client.app.state.providers  # type: ignore[attr-defined]

    async def embed(slug: str) -> tuple[str, int | None, list[list[float]]] | None:
        org = await api.store.organizations.get_by_slug(slug)
        assert org is not None
        found = pool.embedder(await api.store.provider_configs.active(org.id))
        if found is None:
            return None
        return found.model, found.dimension, await found.embed(["a comfy couch"])

    assert api.run(embed, "acme") == (MODEL, 128, [embedding("cozy sofa", dimensions=128)])
    assert api.run(embed, "globex") is None  # configured for one organization only

    events = api.data("{ events(first: 100) { edges { node { type metadata } } } }")
    said = f"{refused} {body} {api.post(PROVIDERS)} {events} {caplog.text}"
    assert KEY not in said and "sk-wrong-but-secret-key-9876543210" not in said
    assert "settings_updated" in str(events) and "communication_event" in str(events)
