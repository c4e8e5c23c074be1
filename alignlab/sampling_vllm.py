"""vLLM generation behind the interface of `alignlab.sampling.generate` (GPU only; `pip install 'alignlab[vllm]'`).

Imported only by `sampling.generate(..., backend="vllm")`, so nothing else needs vLLM installed.
vLLM loads weights from disk, not from the in-memory module: it serves the model saved at `model.name_or_path`
(the directory the model was loaded from or last saved to). A policy that is being trained must be saved there
before each call whose samples should reflect its current weights: the engine is rebuilt when the path or the
modification time of its weight files changes (seconds on a GPU, small next to a rollout of a real model).
"""

from __future__ import annotations

from pathlib import Path

from vllm import LLM, SamplingParams

from alignlab.data.chat import encode_prompt, stop_token_ids
from alignlab.data.records import Prompt

_engine: tuple[tuple[str, int], LLM] | None = None    # ((path, weights mtime), engine): building one takes seconds


def generate(model, tokenizer, prompts: list[Prompt], *, max_new_tokens: int, temperature: float,
             num_samples: int = 1, seed: int, batch_size: int, top_p: float = 1.0) -> list[list[str]]:
    """Same contract as `alignlab.sampling.generate`; `batch_size` is unused (vLLM schedules its own batches).

    Each prompt gets `SamplingParams(seed=seed)`, so the same seed gives the same samples on the same GPU, but not
    the same samples as the torch backend.
    """
    del batch_size
    params = SamplingParams(n=num_samples, temperature=temperature, top_p=top_p, max_tokens=max_new_tokens,
                            seed=seed, stop_token_ids=stop_token_ids(tokenizer, model), skip_special_tokens=True)
    requests = [{"prompt_token_ids": encode_prompt(p, tokenizer)} for p in prompts]
    outputs = _engine_for(str(model.name_or_path), str(model.dtype).removeprefix("torch.")).generate(
        requests, params, use_tqdm=False)
    return [[completion.text for completion in out.outputs] for out in outputs]


def _engine_for(path: str, dtype: str) -> LLM:
    global _engine
    weights = list(Path(path).glob("*.safetensors"))
    if not weights:
        raise FileNotFoundError(f"backend='vllm' loads the model from disk, but {path!r} holds no *.safetensors: "
                                "save the model (model.save_pretrained(dir)) and load it from there first")
    key = (path, max(w.stat().st_mtime_ns for w in weights))
    if _engine is None or _engine[0] != key:
        _engine = (key, LLM(model=path, dtype=dtype, enable_prefix_caching=True))
    return _engine[1]
