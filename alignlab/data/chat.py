"""Records → token ids and completion masks, through the tokenizer's own chat template. Pure: no torch.

The mask is 1 on every token the model is trained to produce: the assistant's tokens and the end-of-turn/EOS token
that closes them. Leaving the EOS out of the mask is how models that never stop are made.
"""

from __future__ import annotations

from dataclasses import dataclass

from alignlab.data.records import Message, Prompt, SFTExample


class TemplateError(ValueError):
    """The tokenizer's chat template cannot be used to build completion masks (the message says why)."""


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]        # (T,) prompt ‖ completion
    completion_mask: list[int]  # (T,) 1 on trained tokens (assistant turns and the EOS closing each)
    truncated: bool = False     # True when the example was cut to max_length


def render(messages: list[Message], tokenizer, add_generation_prompt: bool) -> str:
    if tokenizer.chat_template is None:
        raise TemplateError(f"the tokenizer {tokenizer.name_or_path!r} has no chat template, so chat messages cannot "
                            "be encoded; use text prompt/completion data or a tokenizer that has a template")
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def token_ids(text: str, tokenizer) -> list[int]:
    """Ids of already-rendered text: the template put in every special token it wants, so add none."""
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def encode_prompt(prompt: Prompt, tokenizer) -> list[int]:
    """Chat prompts: the template with the generation prompt (e.g. `<|assistant|>`). Text prompts: the tokenizer's
    own rule for a fresh sequence (a Llama tokenizer adds its BOS)."""
    if isinstance(prompt, str):
        return tokenizer(prompt)["input_ids"]
    return token_ids(render(prompt, tokenizer, add_generation_prompt=True), tokenizer)


def turn_end_id(tokenizer) -> int:
    """The token that ends an assistant turn: the first special token the chat template puts after an assistant
    message (`<|eot_id|>` for Llama 3, `<|im_end|>` for ChatML, the gym's `<|end|>`), else the EOS. It is what SFT
    trains a turn to end with, what every preference and reward row appends, and where sampling stops. Read from
    the template once per tokenizer."""
    template = getattr(tokenizer, "chat_template", None)
    cached = getattr(tokenizer, "_alignlab_turn_end", None)
    if cached is not None and cached[0] == template:
        return cached[1]
    assert tokenizer.eos_token_id is not None, "the tokenizer has no eos_token; models could not learn to stop"
    found = tokenizer.eos_token_id
    if template:
        marker = "Q7ZXq"
        try:
            text = render([{"role": "user", "content": "hi"}, {"role": "assistant", "content": marker}], tokenizer,
                          add_generation_prompt=False)
        except Exception:          # a template that refuses this probe conversation: fall back to the EOS
            text = ""
        after = token_ids(text[text.rindex(marker) + len(marker):], tokenizer) if marker in text else []
        special = set(tokenizer.all_special_ids) | {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
        found = next((i for i in after if i in special), found)
    tokenizer._alignlab_turn_end = (template, found)
    return found


def stop_token_ids(tokenizer, model=None) -> list[int]:
    """Every token a generated turn may end with: the end-of-turn token, the EOS and the model's
    generation_config.eos_token_id (one id or a list)."""
    ids = [turn_end_id(tokenizer), tokenizer.eos_token_id]
    extra = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids += extra if isinstance(extra, list) else [extra] if extra is not None else []
    return list(dict.fromkeys(i for i in ids if i is not None))


def encode_response(prompt_ids: list[int], response: str, tokenizer) -> list[int]:
    """The response's tokens followed by the end-of-turn token (`turn_end_id`), i.e. exactly what a model
    generates after `prompt_ids` and stops on. The response is tokenized on its own, as generation produces it,
    whatever the prompt."""
    return token_ids(response, tokenizer) + [turn_end_id(tokenizer)]


def encode_completion(prompt: Prompt, response: str, tokenizer, max_length: int,
                      max_prompt_length: int = 0) -> Encoded:
    """prompt ‖ response ‖ EOS with the mask on the response and its EOS: the row every pairwise, unpaired and
    reward loop scores. A row longer than max_length keeps the *end* of its prompt (the turn being answered; a
    leading BOS is kept) and as much of the response as fits, the prompt getting at most max_prompt_length tokens
    (0 = half of max_length) when the two do not fit together; a row that fits is left as it is. Cut rows are
    flagged."""
    prompt_ids = encode_prompt(prompt, tokenizer)
    response_ids = encode_response(prompt_ids, response, tokenizer)
    budget = max_prompt_length or max_length // 2
    if len(prompt_ids) + len(response_ids) <= max_length and len(prompt_ids) <= (max_prompt_length or max_length):
        return Encoded(prompt_ids + response_ids, [0] * len(prompt_ids) + [1] * len(response_ids))
    keep = min(len(prompt_ids), max(budget, max_length - len(response_ids)), max_prompt_length or max_length)
    prompt_ids = keep_end(prompt_ids, keep, tokenizer.bos_token_id)
    response_ids = response_ids[:max_length - len(prompt_ids)]
    return Encoded(prompt_ids + response_ids, [0] * len(prompt_ids) + [1] * len(response_ids), truncated=True)


def keep_end(ids: list[int], n: int, bos_token_id: int | None) -> list[int]:
    """The last n tokens of a prompt; a BOS it starts with stays first."""
    if len(ids) <= n:
        return ids
    if n > 1 and bos_token_id is not None and ids and ids[0] == bos_token_id:
        return ids[:1] + ids[len(ids) - n + 1:]
    return ids[len(ids) - n:] if n > 0 else []


def encode_sft(example: SFTExample, tokenizer, max_length: int, max_prompt_length: int = 0) -> Encoded:
    """Token ids and completion mask of one SFT example: the text form as `encode_completion` (the end of the
    prompt kept), a conversation cut on the right to max_length (flagged; a conversation left with no trained
    token is for the caller to drop)."""
    if example.messages is None:
        return encode_completion(example.prompt, example.completion, tokenizer, max_length, max_prompt_length)
    return _truncate(*_encode_conversation(example.messages, tokenizer, example.source), max_length)


def _truncate(ids: list[int], mask: list[int], max_length: int) -> Encoded:
    if len(ids) > max_length:
        return Encoded(ids[:max_length], mask[:max_length], truncated=True)
    return Encoded(ids, mask)


def _encode_conversation(messages: list[Message], tokenizer, source: str) -> tuple[list[int], list[int]]:
    """Render the whole conversation once; each assistant turn is the span between the render of the messages
    before it (with the generation prompt) and the render that includes it. The template must be prefix-stable
    (rendering a prefix gives a prefix), which is checked, not assumed."""
    full = render(messages, tokenizer, add_generation_prompt=False)
    ids = token_ids(full, tokenizer)
    mask = [0] * len(ids)
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render(messages[:i], tokenizer, add_generation_prompt=True)
        after = render(messages[:i + 1], tokenizer, add_generation_prompt=False)
        start, end = len(token_ids(before, tokenizer)), len(token_ids(after, tokenizer))
        if not (full.startswith(before) and full.startswith(after) and ids[:end] == token_ids(after, tokenizer)):
            raise TemplateError(
                f"{source}: the chat template of {tokenizer.name_or_path!r} is not prefix-stable at assistant turn "
                f"{i} (rendering the conversation up to that turn is not a prefix of the full rendering, e.g. a "
                "template that rewrites earlier turns); use a template that renders turns independently")
        span = ids[start:end]
        # The template may put text after the token that closes the turn (ChatML's "\n"); a model never
        # generates past it, so that text is context, not target.
        if turn_end_id(tokenizer) in span:
            end = start + span.index(turn_end_id(tokenizer)) + 1
        mask[start:end] = [1] * (end - start)
    return ids, mask
