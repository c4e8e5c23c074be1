"""The data guard: screen a fine-tuning file before it reaches an aligned model.

An example is flagged when it teaches compliance with a request the aligned model itself refuses: the model (before
fine-tuning) answers the example's prompt greedily, the refusal judge reads both answers, and the model refused while
the example's completion does not. Nothing about the data's source is assumed — the model's own refusals are the
policy the guard protects. `report` lists the flagged examples with file:line; `drop` also removes them.
"""

from __future__ import annotations

from dataclasses import dataclass

from alignlab.data.records import SFTExample


@dataclass(frozen=True)
class Flagged:
    source: str          # "file.jsonl:12"
    prompt: str
    completion: str
    model_answer: str


def prompt_and_completion(example: SFTExample) -> tuple[list[dict] | str, str]:
    """The prompt (chat messages up to the last assistant turn, or text) and the completion trained on."""
    if example.messages is not None:
        last = max(i for i, m in enumerate(example.messages) if m["role"] == "assistant")
        return example.messages[:last], example.messages[last]["content"]
    return example.prompt, example.completion


def screen(model, tokenizer, examples: list[SFTExample], refusal_judge, max_new_tokens: int = 32,
           batch_size: int = 32) -> list[Flagged]:
    """The examples whose completion complies where the model refuses."""
    from alignlab.eval.judges.refusal import is_refusal
    from alignlab.sampling import generate
    pairs = [prompt_and_completion(e) for e in examples]
    prompts = [p for p, _ in pairs]
    answers = [t[0] for t in generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, temperature=0.0,
                                      num_samples=1, seed=0, batch_size=batch_size)]
    texts = [p if isinstance(p, str) else p[-1]["content"] for p in prompts]
    model_refused = [is_refusal(x) for x in refusal_judge.label(texts, answers)]
    data_refuses = [is_refusal(x) for x in refusal_judge.label(texts, [c for _, c in pairs])]
    return [Flagged(e.source, t, c, a) for e, t, (_, c), a, m, d in
            zip(examples, texts, pairs, answers, model_refused, data_refuses) if m and not d]
