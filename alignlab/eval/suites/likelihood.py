"""Log-likelihood of given answers after a prompt, for multiple-choice suites (TruthfulQA MC, BBQ)."""

from __future__ import annotations

import torch

from alignlab.data.chat import encode_prompt
from alignlab.data.records import Prompt
from alignlab.ops import shifted_token_logps


@torch.no_grad()
def answer_logps(model, tokenizer, pairs: list[tuple[Prompt, str]], batch_size: int) -> list[float]:
    """Summed log-prob of each answer's tokens given its prompt (rendered with the chat template).

    The answer is scored as the start of the assistant turn, without the end-of-turn token, as multiple-choice
    evaluations do (Lin et al. 2022, §3.1): a longer answer is not penalised for not having ended.
    Sequences are sorted by length so each batch pads little, and right-padded (positions are then 0..T-1).
    """
    model.eval()
    encoded = []
    for prompt, answer in pairs:
        prompt_ids = encode_prompt(prompt, tokenizer)
        answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
        if not answer_ids:
            raise ValueError(f"empty answer after prompt {prompt!r}: a multiple-choice option needs text")
        encoded.append((prompt_ids + answer_ids, len(prompt_ids)))
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
    out = [0.0] * len(encoded)
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        T = max(len(encoded[i][0]) for i in rows)
        ids = torch.full((len(rows), T), tokenizer.pad_token_id, dtype=torch.long)        # (B, T)
        answer_mask = torch.zeros(len(rows), T - 1)                                       # (B, T-1) scores ids[:, 1:]
        attention = torch.zeros(len(rows), T, dtype=torch.long)                           # (B, T)
        for row, i in enumerate(rows):
            seq, n_prompt = encoded[i]
            ids[row, :len(seq)] = torch.tensor(seq)
            attention[row, :len(seq)] = 1
            answer_mask[row, n_prompt - 1:len(seq) - 1] = 1
        logits = model(input_ids=ids.to(model.device), attention_mask=attention.to(model.device)).logits
        logps = shifted_token_logps(logits.float(), ids.to(model.device)).cpu()            # (B, T-1)
        for row, i in enumerate(rows):
            out[i] = float((logps[row] * answer_mask[row]).sum())
    return out
