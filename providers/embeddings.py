"""Embeddings: vectors of texts from an organization's embedding provider, any server that
speaks OpenAI's `POST {base_url}/embeddings` (OpenAI, Ollama, vLLM, Text Embeddings
Inference...).

Configured per organization like the other providers, with `configureProvider(provider:
"embeddings", routes: [])`: it owns no thing types, and its API key is sealed with the other
secrets. The gateway gets an organization's with `ProviderPool.embedder(configs)`. `embed`:

- cuts each text to `max_input_chars` (the server refuses an input over its token limit) and
  answers a blank one with the zero vector, unasked (the API refuses an empty input);
- sends the others in requests of at most `batch_size` inputs and `MAX_REQUEST_CHARS`
  characters (OpenAI takes 300,000 tokens per request), `concurrency` at a time, each through
  the upstream client: deadline, retries of 5xx, a 429's wait, the circuit breaker;
- checks every answer: one vector per input, each as long as the others (`dimension`: the
  configured `dimensions`, else learned from the first answer).

A vector is recorded with `model` and `dimension`: vectors of another model, or of another
length, are not comparable with it.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Sequence
from typing import Literal

import httpx
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr, TypeAdapter

from providers.errors import InvalidInputError, OneError, ProviderAuthError
from providers.provider import Capabilities, Health, check_health
from providers.registry import ProviderFactory
from providers.upstream import Answer, Upstreams, json_body, retry_after
from providers.validation import excerpt

NAME = "embeddings"
MAX_BATCH = 2048  # inputs per request, as OpenAI allows
CHARS_PER_TOKEN = 3  # fewer than English's ~4: a margin for text that tokenizes denser
MAX_REQUEST_CHARS = 250_000 * CHARS_PER_TOKEN  # under OpenAI's 300,000 tokens per request
_CODE = re.compile(r"[a-z_]{1,40}")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class EmbeddingsConfig(BaseModel):
    """An OpenAI-compatible embeddings endpoint.

    Example:
        {"base_url": "https://api.openai.com/v1", "api_key": "sk-...",
         "model": "text-embedding-3-small", "dimensions": 512}
        {"base_url": "http://localhost:11434/v1", "model": "nomic-embed-text"}  # Ollama
    """

    model_config = ConfigDict(extra="forbid")

    base_url: HttpUrl  # the API root: the endpoint is base_url + "/embeddings"
    api_key: SecretStr | None = None  # local servers (Ollama, vLLM) may need none
    model: str = Field(min_length=1, max_length=200)
    dimensions: int | None = Field(default=None, ge=1, le=16_384)  # sent when set
    encoding_format: Literal["float", "base64"] = "float"  # base64: a quarter of the bytes
    batch_size: int = Field(default=64, ge=1, le=MAX_BATCH)
    max_input_chars: int = Field(default=8_000 * CHARS_PER_TOKEN, ge=1, le=200_000)
    concurrency: int = Field(default=4, ge=1, le=32)  # requests in flight per `embed`
    timeout_seconds: float = Field(default=30.0, gt=0, le=120)
    # Attempts after the first (429s, 5xx, timeouts), within ONE_UPSTREAM_ATTEMPTS.
    max_retries: int = Field(default=3, ge=0, le=10)


class _Vector(BaseModel):
    index: int
    embedding: list[float] | str  # str: base64 of little-endian float32s


class _Vectors(BaseModel):
    data: list[_Vector]


class _Refusal(BaseModel):
    type: str | None = None
    code: str | int | None = None


class _Error(BaseModel):
    error: _Refusal


_VECTORS = json_body(TypeAdapter(_Vectors))
_ERROR = TypeAdapter(_Error)


class EmbeddingProvider:
    """One organization's embedding model.

    Example:
        embedder = pool.embedder(await configs.of(org_id))
        if embedder is not None:
            vectors = await embedder.embed(["a comfy couch", "a fast car"])
            # each len(v) == embedder.dimension, made by embedder.model
    """

    name = NAME
    thing_types: frozenset[str] = frozenset()
    capabilities = Capabilities(read=False, batch_size=MAX_BATCH)

    def __init__(
        self, org_id: str, config: EmbeddingsConfig, upstreams: httpx.AsyncClient | Upstreams
    ) -> None:
        self.org_id = org_id
        self.model = config.model
        self.dimension: int | None = config.dimensions
        self._config = config
        self._url = str(config.base_url).rstrip("/") + "/embeddings"
        key = config.api_key.get_secret_value() if config.api_key else ""
        self.upstream = Upstreams.of(upstreams).open(
            org_id=org_id,
            provider=NAME,
            label="The embedding provider",
            origin=self._url,
            timeout=config.timeout_seconds,
            attempts=config.max_retries + 1,
            headers={"Authorization": f"Bearer {key}"} if key else {},
        )

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order, all `dimension` long; a blank text's is zeros."""
        inputs = [text[: self._config.max_input_chars] for text in texts]
        asked = [at for at, text in enumerate(inputs) if text.strip()]
        slots = asyncio.Semaphore(self._config.concurrency)

        async def send(batch: list[int]) -> list[list[float]]:
            async with slots:
                return await self._request([inputs[at] for at in batch])

        batches = self._batches(asked, inputs)
        answers = await asyncio.gather(*(send(batch) for batch in batches))
        if len(asked) < len(inputs) and self.dimension is None:
            await self._request(["ping"])  # only blanks, and no answer yet to learn the length
        vectors = [[0.0] * (self.dimension or 0) for _ in inputs]
        for batch, answer in zip(batches, answers, strict=True):
            for at, vector in zip(batch, answer, strict=True):
                vectors[at] = vector
        return vectors

    async def health(self) -> Health:
        return await check_health(self._request(["ping"]))

    def _batches(self, asked: list[int], inputs: list[str]) -> list[list[int]]:
        batches: list[list[int]] = []
        chars = 0
        for at in asked:
            size = len(inputs[at])
            full = len(batches[-1]) == self._config.batch_size if batches else True
            if full or chars + size > MAX_REQUEST_CHARS:
                batches.append([])
                chars = 0
            batches[-1].append(at)
            chars += size
        return batches

    async def _request(self, inputs: list[str]) -> list[list[float]]:
        body: dict[str, object] = {"input": inputs, "model": self.model}
        if self._config.dimensions is not None:
            body["dimensions"] = self._config.dimensions
        if self._config.encoding_format == "base64":
            body["encoding_format"] = "base64"
        reply = await self.upstream.send(
            "POST",
            self._url,
            json=body,
            read=True,  # no side effects: safe to send again
            expect=_VECTORS,
            rejected=self._rejected,
            throttled=_throttled,
        )
        return self._vectors(reply.body, len(inputs))

    def _vectors(self, answer: _Vectors, count: int) -> list[list[float]]:
        by_index = {v.index: _floats(v.embedding) for v in answer.data}
        if len(answer.data) != count or set(by_index) != set(range(count)):
            raise self.upstream.wording.bad_response("another number of vectors than asked")
        vectors = [by_index[at] for at in range(count)]
        dimension = self.dimension or len(vectors[0])
        if not dimension or any(len(v) != dimension for v in vectors):
            lengths = ", ".join(sorted({str(len(v)) for v in vectors}))
            raise self.upstream.wording.bad_response(
                f"vectors of {lengths} dimensions where {dimension} were expected"
            )
        self.dimension = dimension
        return vectors

    def _rejected(self, answer: Answer) -> OneError | None:
        try:
            refusal = _ERROR.validate_json(answer.content).error
        except ValueError:
            refusal = _Refusal()
        code = str(refusal.code or refusal.type or "")
        code = code if _CODE.fullmatch(code) else ""
        if answer.status in (401, 403) or code == "invalid_api_key":
            return ProviderAuthError(
                "The embedding provider refused the API key", provider=NAME, status=answer.status
            )
        if answer.status == 404 or code == "model_not_found":
            return InvalidInputError(
                f"the embedding provider does not serve the model '{excerpt(self.model)}' "
                "(check model and base_url)",
                field="model",
                provider=NAME,
            )
        if answer.status in (400, 413, 422):
            # Our inputs are never empty, too many or too long: the config is what it refuses.
            return InvalidInputError(
                "the embedding provider rejected the request (check model and dimensions)",
                provider=NAME,
                upstream_code=code,
            )
        return None


def _floats(embedding: list[float] | str) -> list[float]:
    if isinstance(embedding, list):
        return embedding
    try:
        raw = base64.b64decode(embedding, validate=True)
    except ValueError:
        raise ValueError("an embedding that is not base64") from None
    if len(raw) % 4:
        raise ValueError("an embedding that is not float32s")
    floats: list[float] = np.frombuffer(raw, dtype="<f4").astype(float).tolist()
    return floats


def _throttled(answer: Answer) -> float | None:
    """A 429's wait: `retry-after-ms`, `retry-after`, or OpenAI's `x-ratelimit-reset-*`
    ("1s", "6m0s", "20ms"), the longer of the limits that ran out."""
    if answer.status != 429:
        return None
    headers = answer.headers
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(float(ms) / 1000, 0.0)
        except ValueError:
            pass
    if (seconds := retry_after(headers)) is not None:
        return seconds
    resets = [
        _duration(headers.get(f"x-ratelimit-reset-{kind}", ""))
        for kind in ("requests", "tokens")
        if headers.get(f"x-ratelimit-remaining-{kind}") in ("0", None)
    ]
    return max((r for r in resets if r is not None), default=1.0)


def _duration(value: str) -> float | None:
    parts = _DURATION.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value.strip():
        return None
    return sum(float(n) * _SECONDS[u] for n, u in parts)


PROVIDER = ProviderFactory.of(EmbeddingProvider, EmbeddingsConfig)
