"""The contract between `alignlab eval` and every suite: one settings object in, one `SuiteResult` out.

Each suite module has `run_suite(model, tokenizer, settings: EvalSettings) -> SuiteResult`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

# ../shared/data beside the repository, where the published benchmark files are kept (see its README).
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data"


@dataclass
class EvalSettings:
    temperature: float = 1.0
    """Sampling temperature of the sampled responses (the greedy pass, if any, is separate)."""
    num_samples: int = 4
    """Sampled responses per prompt at `temperature`."""
    max_new_tokens: int = 64
    """Longest response, in tokens."""
    seed: int = 0
    """Seed of the sampler; the same seed gives the same responses."""
    batch_size: int = 32
    """Prompts per forward pass (generation and log-likelihood scoring)."""
    limit: int | None = None
    """Evaluate only `limit` items (None = all): the file's first ones (XSTest: round-robin over its types;
    BBQ: the first `limit` of each category file)."""
    greedy: bool = True
    """Also evaluate one greedy (temperature 0) response per prompt, reported under "greedy"."""
    data_dir: str | None = None
    """Directory holding the benchmark folders (xstest/, advbench/, ...); None = ../shared/data."""
    judge: str = "default"
    """Judge of free-text responses: "default" is each suite's own choice (recorded in the result)."""
    judge_model: str | None = None
    """LLM judge of the mt_bench and alpaca_eval suites: a local Hugging Face chat model directory (or set
    judge_endpoint)."""
    judge_endpoint: str | None = None
    """LLM judge of the mt_bench and alpaca_eval suites: an OpenAI-compatible base URL, e.g.
    http://127.0.0.1:8000/v1 (vLLM, llama.cpp, TGI, or a hosted API)."""
    judge_endpoint_model: str = "default"
    """Model name sent to judge_endpoint."""
    judge_api_key_env: str | None = None
    """Name of the environment variable holding judge_endpoint's API key (the key itself is never written)."""
    judge_max_tokens: int = 512
    """Longest judge output (MT-Bench's judges explain, then give the verdict)."""
    jailbreak_behaviours: str = "harmbench"
    """jailbreaks: the harmful requests put into the templates: harmbench | advbench | gym (held-out gym requests,
    judged by the gold judge)."""
    jailbreak_templates: int | None = 8
    """jailbreaks: templates drawn (with `seed`) from each family (DAN, in the wild), besides the direct request;
    None = all (14 DAN, 666 in the wild)."""
    heldout_only: bool = False
    """truthfulqa, bbq, xstest: evaluate only the half of the items kept out of training (alignlab.data.splits) —
    set it when a model was trained on `alignlab data adapt` output of the same set."""
    alpaca_baseline: str = "gpt4_1106_preview"
    """alpaca_eval: the reference outputs the model is compared with, alpaca_eval/<name>_model_outputs.json
    (gpt4_1106_preview: AlpacaEval 2.0; text_davinci_003: AlpacaEval 1)."""

    def data_root(self) -> Path:
        return Path(self.data_dir) if self.data_dir is not None else DEFAULT_DATA_DIR

    def data_path(self, *parts: str) -> Path:
        """Path of a benchmark file under `data_dir`; a missing file says which flag to set."""
        path = self.data_root().joinpath(*parts)
        if not path.exists():
            raise FileNotFoundError(f"{path} not found; pass --data-dir DIR where DIR holds {parts[0]}/ "
                                    f"(the published benchmark files, see ../shared/data/README.md)")
        return path


# Settings only some suites read (a pipeline's stage fingerprint leaves them out when none of those suites runs, so
# adding such a setting does not redo old runs).
_LLM_JUDGE = ("judge_model", "judge_endpoint", "judge_endpoint_model", "judge_api_key_env", "judge_max_tokens")
SUITE_SETTINGS = {"mt_bench": _LLM_JUDGE, "alpaca_eval": (*_LLM_JUDGE, "alpaca_baseline"),
                  "jailbreaks": ("jailbreak_behaviours", "jailbreak_templates"),
                  "truthfulqa": ("heldout_only",), "bbq": ("heldout_only",), "xstest": ("heldout_only",)}


def settings_read_by(settings: EvalSettings, suites: list[str]) -> dict:
    """The settings that can change the results of `suites`, as plain data."""
    specific = {k for keys in SUITE_SETTINGS.values() for k in keys}
    read = {k for suite in suites for k in SUITE_SETTINGS.get(suite, ())}
    return {k: v for k, v in asdict(settings).items() if k not in specific or k in read}


@dataclass
class SuiteResult:
    metrics: dict
    """Flat-ish JSON object of the suite's numbers (plus "judge", and "greedy" where generated)."""
    records: list[dict] = field(default_factory=list)
    """One JSON object per prompt (or per prompt × sample): inputs, responses, judgements."""
