"""An emulator of OpenAI's embeddings API (`POST /v1/embeddings`, `GET /v1/models`), on
loopback: what Ollama, vLLM and Text Embeddings Inference imitate.

What it holds to, as OpenAI documents it (platform.openai.com/docs/api-reference/embeddings):
- `Authorization: Bearer <key>` (none: 401, `code: null`; a wrong one: 401
  `invalid_api_key`, its message quoting the key masked); `api_key=None` asks for none, as
  Ollama does.
- A request is `{input, model, dimensions?, encoding_format?, user?}`; another field is 400.
  `input` is a string, an array of up to 2048 strings, or tokens (an array of integers, or of
  arrays of them); an empty string or array is 400, an input over 8192 tokens is 400 ("This
  model's maximum context length is 8192 tokens..."), a request over 300,000 tokens in all
  is 400 (`max_tokens_per_request`). Tokens here: one per four bytes of UTF-8, rounded up.
- An unknown `model` is 404 `model_not_found`. `dimensions` only for the text-embedding-3
  models (else 400), at most the model's size; `encoding_format` is "float" (the default) or
  "base64": the vector's little-endian float32s, base64-encoded.
- The answer: `{object: "list", data: [{object: "embedding", index, embedding}], model,
  usage: {prompt_tokens, total_tokens}}`, in input order. Errors: `{error: {message, type,
  param, code}}`.
- Rate limit: at most `limit` requests per `window` seconds (none by default); past it, 429
  `rate_limit_exceeded` with `retry-after` (whole seconds; left out when `send_retry_after` is
  False) and `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` (resets as "1s", "20ms"),
  which every answer carries.

Its vectors are deterministic and semantic enough to test search with. A text's words
(lower-cased; "a", "the", "of"... left out; a plural of a known word read as that word) each
stand for a concept: the words of one group of `SYNONYMS` for the same one, any other word for
itself. The vector is the L2-normalised sum of one fixed pseudo-random unit vector per
concept (seeded by the model and the concept), so "a comfy couch" and "a cozy sofa" get the
same vector, "sofa" and "car" nearly orthogonal ones, and another model other vectors. A
vector is `dimensions` long: 256 unless the emulator or the request says otherwise (the real
text-embedding-3-small gives 1536); a shorter one is the start of the model's full vector,
normalised again, as text-embedding-3 shortens. `embedding(text, model=, dimensions=)` is the
vector the emulator answers, for tests to compare with. The groups, each headed by its
concept:

    sofa: sofa couch settee divan loveseat       car: car automobile vehicle auto sedan
    hammock: hammock lounger swingbed            chair: chair seat stool armchair
    table: table desk workbench                  bed: bed mattress bunk cot
    lamp: lamp light lantern sconce              shoe: shoe sneaker trainer boot footwear
    shirt: shirt tee tshirt blouse               jacket: jacket coat parka anorak
    trousers: trousers pants jeans slacks        bag: bag backpack rucksack tote satchel
    phone: phone smartphone mobile cellphone     laptop: laptop notebook computer pc
    cheap: cheap affordable inexpensive budget bargain
    expensive: expensive pricey costly premium luxury
    price: price cost fee charge                 discount: discount sale deal offer coupon
    buy: buy purchase order checkout shop        shipping: shipping delivery postage freight
    refund: refund return reimbursement          customer: customer client buyer shopper
    garden: garden yard backyard lawn patio      outdoor: outdoor outside outdoors alfresco
    comfortable: comfortable comfy cozy cosy snug
    big: big large huge spacious roomy           small: small little tiny compact mini
    fast: fast quick rapid speedy swift          happy: happy glad joyful cheerful delighted
    sad: sad unhappy gloomy sorrowful            start: start begin launch commence
    guide: guide tutorial howto walkthrough handbook manual
    article: article post blog essay story       author: author writer blogger columnist
    recipe: recipe cooking cuisine dish          travel: travel trip journey vacation holiday
    dog: dog puppy hound canine                  cat: cat kitten feline kitty
    coffee: coffee espresso latte cappuccino     sleep: sleep nap doze snooze slumber
    bug: bug defect glitch error                 help: help support assistance aid
    fix: fix repair mend patch                   course: course class lesson lecture workshop
    learn: learn study master                    money: money cash funds payment
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import re
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.emulators import Fault, injected

MAX_INPUTS = 2048
MAX_INPUT_TOKENS = 8192
MAX_REQUEST_TOKENS = 300_000
DIMENSIONS = 256
DEFAULT_MODEL = "text-embedding-3-small"
FIELDS = frozenset({"input", "model", "dimensions", "encoding_format", "user"})


@dataclass(frozen=True)
class Model:
    size: int  # the most dimensions it gives
    shortens: bool  # takes `dimensions`


MODELS = {
    "text-embedding-3-small": Model(1536, shortens=True),
    "text-embedding-3-large": Model(3072, shortens=True),
    "text-embedding-ada-002": Model(1536, shortens=False),
    "nomic-embed-text": Model(768, shortens=False),  # as Ollama serves it
}

_GROUPS = """
sofa couch settee divan loveseat | car automobile vehicle auto sedan
hammock lounger swingbed | chair seat stool armchair | table desk workbench
bed mattress bunk cot | lamp light lantern sconce | shoe sneaker trainer boot footwear
shirt tee tshirt blouse | jacket coat parka anorak | trousers pants jeans slacks
bag backpack rucksack tote satchel | phone smartphone mobile cellphone
laptop notebook computer pc | cheap affordable inexpensive budget bargain
expensive pricey costly premium luxury | price cost fee charge
discount sale deal offer coupon | buy purchase order checkout shop
shipping delivery postage freight | refund return reimbursement
customer client buyer shopper | garden yard backyard lawn patio
outdoor outside outdoors alfresco | comfortable comfy cozy cosy snug
big large huge spacious roomy | small little tiny compact mini
fast quick rapid speedy swift | happy glad joyful cheerful delighted
sad unhappy gloomy sorrowful | start begin launch commence
guide tutorial howto walkthrough handbook manual | article post blog essay story
author writer blogger columnist | recipe cooking cuisine dish
travel trip journey vacation holiday | dog puppy hound canine | cat kitten feline kitty
coffee espresso latte cappuccino | sleep nap doze snooze slumber
bug defect glitch error | help support assistance aid | fix repair mend patch
course class lesson lecture workshop | learn study master | money cash funds payment
"""
SYNONYMS: dict[str, tuple[str, ...]] = {
    words[0]: tuple(words)
    for words in (group.split() for group in _GROUPS.replace("\n", "|").split("|"))
    if words
}
CONCEPT = {word: head for head, words in SYNONYMS.items() for word in words}
assert len(CONCEPT) == sum(len(words) for words in SYNONYMS.values()), "a word in two groups"

_STOP = """a an the and or of to in on for with at by from as is are was were be been it its
this that these those my your our their i we you he she they"""
STOP_WORDS = frozenset(_STOP.split())
_WORD = re.compile(r"[^\W_]+")


def concepts(text: str) -> list[str]:
    """The concepts a text's words stand for, in order (repeats kept)."""
    return [_concept(w) for w in _WORD.findall(text.casefold()) if w not in STOP_WORDS]


def _concept(word: str) -> str:
    for stem in (word, word[:-1] if word.endswith("s") else "", _singular(word)):
        if stem in CONCEPT:
            return CONCEPT[stem]
    return word


def _singular(word: str) -> str:
    if word.endswith("ies"):
        return word[:-3] + "y"
    return word[:-2] if word.endswith("es") else ""


def embedding(
    text: str | list[int], *, model: str = DEFAULT_MODEL, dimensions: int = DIMENSIONS
) -> list[float]:
    """The vector the emulator gives `text` (or tokens), for tests to compare with."""
    if isinstance(text, list):
        found = [f"#{token}" for token in text]
    else:
        found = concepts(text) or ["<blank>"]
    size = max(dimensions, MODELS[model].size if model in MODELS else 0)
    full = np.sum([_unit(model, concept, size) for concept in found], axis=0)
    # As text-embedding-3 shortens: the start of the full vector, normalised again.
    start = full[:dimensions]
    norm = float(np.linalg.norm(start))
    vector: list[float] = (start / norm if norm else _unit(model, "<blank>", dimensions)).tolist()
    return vector


@functools.lru_cache(maxsize=65536)
def _unit(model: str, concept: str, dimensions: int) -> np.ndarray[Any, np.dtype[np.float64]]:
    seed = int.from_bytes(hashlib.sha256(f"{model}\0{concept}".encode()).digest()[:8], "big")
    vector = np.random.default_rng(seed).standard_normal(dimensions)
    unit: np.ndarray[Any, np.dtype[np.float64]] = vector / np.linalg.norm(vector)
    return unit


def tokens(text: str | list[int]) -> int:
    """How many tokens the emulator counts in an input."""
    if isinstance(text, list):
        return len(text)
    return max(1, math.ceil(len(text.encode()) / 4))


class OpenAIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": type, "param": param, "code": code}}

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(self.body, self.status, headers=headers)


@dataclass(frozen=True)
class Call:
    """One request that reached the model: what it asked for."""

    model: str
    inputs: list[str | list[int]]
    dimensions: int | None
    encoding_format: str


@dataclass
class EmbeddingsEmulator:
    api_key: str | None = "sk-test-embeddings-0123456789"
    dimensions: int = DIMENSIONS  # a vector's length when the request gives no `dimensions`
    limit: int | None = None  # requests per `window` seconds; None: no limit
    window: float = 60.0
    send_retry_after: bool = True
    token_limit: int = 1_000_000  # per minute, reported in the headers only
    fault: Fault | None = None
    models: dict[str, Model] = field(default_factory=lambda: dict(MODELS))
    requests: int = 0  # every HTTP request
    rate_limited: int = 0
    calls: list[Call] = field(default_factory=list)  # every request answered with vectors

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._recent: deque[float] = deque()
        self.app = Starlette(
            routes=[
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )

    @property
    def batches(self) -> list[int]:
        """The number of inputs of each answered request, in the order they were answered."""
        return [len(call.inputs) for call in self.calls]

    # -- the gate every request passes ---------------------------------------------------

    async def _gate(self, request: Request) -> Response | None:
        with self._lock:
            self.requests += 1
        if (faulty := await injected(self.fault)) is not None:
            return faulty
        if (refused := self._unauthorized(request)) is not None:
            return refused.response()
        with self._lock:
            now = time.monotonic()
            while self._recent and self._recent[0] <= now - self.window:
                self._recent.popleft()
            if self.limit is not None and len(self._recent) >= self.limit:
                self.rate_limited += 1
                reset = self._recent[0] + self.window - now
                headers = self._limits(0, reset)
                if self.send_retry_after:
                    headers["retry-after"] = str(max(1, math.ceil(reset)))
                return OpenAIError(
                    429,
                    f"Rate limit reached for requests in organization org-emulator on requests "
                    f"per min (RPM): Limit {self.limit}, Used {self.limit}, Requested 1. "
                    f"Please try again in {_duration(reset)}.",
                    type="requests",
                    code="rate_limit_exceeded",
                ).response(headers)
            self._recent.append(now)
        return None

    def _unauthorized(self, request: Request) -> OpenAIError | None:
        if self.api_key is None:
            return None
        given = request.headers.get("authorization", "")
        if not given.startswith("Bearer ") or not given[7:].strip():
            return OpenAIError(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), "
                "or as the password field (with blank username) if you're accessing the API "
                "from your browser and are prompted for a username and password. You can obtain "
                "an API key from https://platform.openai.com/account/api-keys.",
            )
        key = given[7:].strip()
        if key != self.api_key:
            masked = key[:3] + "*" * max(0, len(key) - 7) + key[-4:] if len(key) > 7 else "***"
            return OpenAIError(
                401,
                f"Incorrect API key provided: {masked}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )
        return None

    def _limits(self, remaining: int | None = None, reset: float = 0.0) -> dict[str, str]:
        """OpenAI's rate limit headers, as every answer carries them."""
        limit = self.limit if self.limit is not None else 10_000
        if remaining is None:
            remaining = max(0, limit - len(self._recent))
        return {
            "x-ratelimit-limit-requests": str(limit),
            "x-ratelimit-remaining-requests": str(remaining),
            "x-ratelimit-reset-requests": _duration(reset),
            "x-ratelimit-limit-tokens": str(self.token_limit),
            "x-ratelimit-remaining-tokens": str(self.token_limit),
            "x-ratelimit-reset-tokens": "0s",
            "x-request-id": f"req_{uuid.uuid4().hex}",
        }

    # -- the routes ----------------------------------------------------------------------

    async def _models(self, request: Request) -> Response:
        if (refused := await self._gate(request)) is not None:
            return refused
        data = [
            {"id": name, "object": "model", "created": 1705948997, "owned_by": "system"}
            for name in self.models
        ]
        return JSONResponse({"object": "list", "data": data}, headers=self._limits())

    async def _embeddings(self, request: Request) -> Response:
        if (refused := await self._gate(request)) is not None:
            return refused
        try:
            call = self._call(await request.body())
        except OpenAIError as exc:
            return exc.response(self._limits())
        size = call.dimensions or self.dimensions
        data = []
        for index, text in enumerate(call.inputs):
            vector = embedding(text, model=call.model, dimensions=size)
            encoded: list[float] | str = vector
            if call.encoding_format == "base64":
                encoded = base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        counted = sum(tokens(text) for text in call.inputs)
        with self._lock:
            self.calls.append(call)
        body = {
            "object": "list",
            "data": data,
            "model": call.model,
            "usage": {"prompt_tokens": counted, "total_tokens": counted},
        }
        return JSONResponse(body, headers=self._limits())

    def _call(self, raw: bytes) -> Call:
        """The request, as the API validates it."""
        try:
            body = json.loads(raw)
        except ValueError:
            raise OpenAIError(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means "
                "you aren't using your HTTP library correctly. The OpenAI API expects a JSON "
                "payload, but what was sent was not valid JSON.",
            ) from None
        if not isinstance(body, dict):
            raise OpenAIError(400, "Invalid type for request body: expected an object.")
        for name in body:
            if name not in FIELDS:
                raise OpenAIError(400, f"Unrecognized request argument supplied: {name}")
        model_name = body.get("model")
        if not isinstance(model_name, str) or not model_name:
            raise OpenAIError(400, "you must provide a model parameter", param="model")
        model = self.models.get(model_name)
        if model is None:
            raise OpenAIError(
                404,
                f"The model `{model_name}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
        inputs = _inputs(body.get("input"))
        dimensions = body.get("dimensions")
        if dimensions is not None:
            if not model.shortens:
                raise OpenAIError(400, "This model does not support specifying dimensions.")
            if not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1:
                raise OpenAIError(
                    400,
                    f"Invalid value for 'dimensions' = {dimensions}. Must be at least 1.",
                    param="dimensions",
                )
            if dimensions > model.size:
                raise OpenAIError(
                    400,
                    f"Invalid value for 'dimensions' = {dimensions}. Must be less than or "
                    f"equal to {model.size}.",
                    param="dimensions",
                )
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            raise OpenAIError(
                400,
                f"Invalid value for 'encoding_format': {encoding!r}. Supported values are: "
                "'float' and 'base64'.",
                param="encoding_format",
            )
        if "user" in body and not isinstance(body["user"], str):
            raise OpenAIError(400, "Invalid type for 'user': expected a string.", param="user")
        return Call(model_name, inputs, dimensions, encoding)


def _inputs(value: Any) -> list[str | list[int]]:
    """`input` as a list of inputs (strings or token lists), or the API's 400."""
    invalid = OpenAIError(
        400,
        "'$.input' is invalid. Please check the API reference: "
        "https://platform.openai.com/docs/api-reference.",
    )
    if isinstance(value, str):
        inputs: list[str | list[int]] = [value]
    elif isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        inputs = [list(value)]
    elif isinstance(value, list) and value:
        inputs = value
    else:
        raise invalid
    if len(inputs) > MAX_INPUTS:
        raise OpenAIError(
            400,
            f"Too many inputs. The max number of inputs is {MAX_INPUTS}. We recommend "
            "sending fewer inputs per request.",
            param="input",
        )
    total = 0
    for text in inputs:
        tokenized = isinstance(text, list) and all(isinstance(t, int) for t in text)
        if not (isinstance(text, str) or tokenized) or not text:
            raise invalid
        counted = tokens(text)
        if counted > MAX_INPUT_TOKENS:
            raise OpenAIError(
                400,
                f"This model's maximum context length is {MAX_INPUT_TOKENS} tokens, however "
                f"you requested {counted} tokens ({counted} in your prompt; 0 for the "
                "completion). Please reduce your prompt; or completion length.",
            )
        total += counted
    if total > MAX_REQUEST_TOKENS:
        raise OpenAIError(
            400,
            f"Requested {total} tokens, max {MAX_REQUEST_TOKENS} tokens per request",
            param="input",
            code="max_tokens_per_request",
        )
    return inputs


def _duration(seconds: float) -> str:
    """OpenAI's way of writing a reset: "20ms", "1s", "6m0s"."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:.0f}s" if minutes else f"{rest:.3g}s"
