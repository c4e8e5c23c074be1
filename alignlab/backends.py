"""Chat back-ends: one interface for a local Hugging Face model and any OpenAI-compatible endpoint (vLLM, llama.cpp,
TGI, a hosted API). The LLM judges (eval/judges/llm.py) and synthetic data (data/synth.py) use the same ones.

    backend.chat(conversations)                              → one greedy answer per conversation
    backend.sample(conversations, n, temperature, seed=…)    → n sampled answers per conversation
    backend.settings()                                       → what produced them, for provenance
"""

from __future__ import annotations

import os
import threading
import time


class EndpointBackend:
    """POST {base_url}/chat/completions through the `openai` client: its retries (with back-off, on connection
    errors, 429 and 5xx) and an optional request rate limit. The API key is read from an environment variable, never
    written anywhere."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, max_tokens: int = 512,
                 timeout: float = 120.0, max_retries: int = 4, requests_per_minute: float | None = None):
        try:
            import openai
        except ImportError:
            raise ImportError("an OpenAI-compatible endpoint needs the `openai` package: pip install openai "
                              "(or alignlab[eval])") from None
        self.client = openai.OpenAI(base_url=base_url.rstrip("/"), api_key=api_key or "not-needed",
                                    timeout=timeout, max_retries=max_retries)
        self.base_url, self.model, self.max_tokens = base_url, model, max_tokens
        self.name = f"openai:{model}@{base_url}"
        self.interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self._next_at, self._lock = 0.0, threading.Lock()
        self.max_retries, self.requests_per_minute = max_retries, requests_per_minute

    def _wait_turn(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            wait = self._next_at - now
            self._next_at = max(now, self._next_at) + self.interval
        if wait > 0:
            time.sleep(wait)

    def _complete(self, messages: list[dict[str, str]], temperature: float, max_tokens: int, seed: int | None) -> str:
        self._wait_turn()
        extra = {} if seed is None else {"seed": seed}
        response = self.client.chat.completions.create(model=self.model, messages=messages, temperature=temperature,
                                                       max_tokens=max_tokens, **extra)
        return response.choices[0].message.content or ""

    def chat(self, conversations: list[list[dict[str, str]]]) -> list[str]:
        return [self._complete(m, 0.0, self.max_tokens, None) for m in conversations]

    def sample(self, conversations: list[list[dict[str, str]]], n: int, temperature: float, seed: int = 0,
               max_tokens: int | None = None) -> list[list[str]]:
        """n requests per conversation (seeds seed, seed+1, …: servers that honour `seed` give the same answers
        again; not every server supports `n` > 1 in one request)."""
        return [[self._complete(m, temperature, max_tokens or self.max_tokens, seed + i) for i in range(n)]
                for m in conversations]

    def settings(self) -> dict:
        return {"backend": "openai-compatible", "base_url": self.base_url, "model": self.model,
                "max_tokens": self.max_tokens, "max_retries": self.max_retries,
                "requests_per_minute": self.requests_per_minute}


class HFBackend:
    """A local Hugging Face chat model through alignlab.sampling.generate (batched, KV-cached)."""

    def __init__(self, model, tokenizer, max_new_tokens: int = 512, batch_size: int = 8, name: str = "hf"):
        self.model, self.tokenizer = model, tokenizer
        self.max_new_tokens, self.batch_size, self.name = max_new_tokens, batch_size, name
        self.max_tokens = max_new_tokens

    def chat(self, conversations: list[list[dict[str, str]]]) -> list[str]:
        return [texts[0] for texts in self.sample(conversations, 1, 0.0)]

    def sample(self, conversations: list[list[dict[str, str]]], n: int, temperature: float, seed: int = 0,
               max_tokens: int | None = None) -> list[list[str]]:
        from alignlab.sampling import generate
        self.model.eval()
        return generate(self.model, self.tokenizer, conversations, max_new_tokens=max_tokens or self.max_new_tokens,
                        temperature=temperature, num_samples=n, seed=seed, batch_size=self.batch_size)

    def settings(self) -> dict:
        return {"backend": "hf", "model": self.name, "max_new_tokens": self.max_new_tokens,
                "batch_size": self.batch_size}


def load_hf_backend(path: str, max_new_tokens: int = 512, batch_size: int = 8) -> HFBackend:
    from alignlab.config import ModelConfig
    from alignlab.models import choose_device, load_causal_lm, load_tokenizer
    model = load_causal_lm(ModelConfig(path=path)).to(choose_device()).eval()
    return HFBackend(model, load_tokenizer(path), max_new_tokens, batch_size, name=f"hf:{path}")


def api_key_from(env_name: str | None) -> str | None:
    """The key in environment variable `env_name` (None when no name is given); a name that is not set is an error."""
    if not env_name:
        return None
    key = os.environ.get(env_name)
    if key is None:
        raise ValueError(f"the API key variable {env_name} is not set in the environment; export it or leave the "
                         "key setting unset")
    return key
