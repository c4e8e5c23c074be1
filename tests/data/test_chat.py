"""Completion masks from real chat templates: the gym's and a ChatML one. The end-of-turn/EOS is always trained on."""

from __future__ import annotations

import copy

import pytest

from alignlab.data.chat import TemplateError, encode_completion, encode_prompt, encode_response, encode_sft
from alignlab.data.records import SFTExample
from alignlab.models import load_tokenizer

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Rewrites the whole conversation depending on its length, like templates that strip earlier turns' reasoning.
UNSTABLE_TEMPLATE = "{{ messages | length }}" + CHATML_TEMPLATE

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is the capital of Veloria?"},
    {"role": "assistant", "content": "Dorn."},
    {"role": "user", "content": "And of Brava?"},
    {"role": "assistant", "content": "Mirel, on the river."},
]


@pytest.fixture(scope="module")
def gym_tokenizer(tiny_lm):
    return load_tokenizer(str(tiny_lm))


@pytest.fixture(scope="module")
def chatml_tokenizer():
    """A second, different real template: ChatML (Qwen/Hermes style), whose EOS `<|im_end|>` is followed by \\n."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    texts = ["What is the capital of Veloria? Dorn. And of Brava? Mirel, on the river. Be brief."] * 4
    core.train_from_iterator(texts, trainer=trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        additional_special_tokens=["<|im_start|>"])
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def trained_text(tokenizer, encoded) -> str:
    """The masked tokens decoded, one span per run of 1s, joined by ' | '."""
    spans, current = [], []
    for token, m in zip(encoded.input_ids, encoded.completion_mask):
        if m:
            current.append(token)
        elif current:
            spans.append(current)
            current = []
    if current:
        spans.append(current)
    return " | ".join(tokenizer.decode(s) for s in spans)


def test_gym_template_single_turn_mask_ends_with_eos(gym_tokenizer):
    example = SFTExample(CONVERSATION[1:3], None, None, "t:1")
    encoded = encode_sft(example, gym_tokenizer, max_length=512)
    assert trained_text(gym_tokenizer, encoded) == "Dorn.<|end|>"
    assert encoded.input_ids[-1] == gym_tokenizer.eos_token_id and encoded.completion_mask[-1] == 1
    prompt_part = [t for t, m in zip(encoded.input_ids, encoded.completion_mask) if not m]
    assert gym_tokenizer.decode(prompt_part) == "<|bos|><|user|>What is the capital of Veloria?<|end|><|assistant|>"
    assert not encoded.truncated


def test_gym_template_every_assistant_turn_is_trained(gym_tokenizer):
    encoded = encode_sft(SFTExample(CONVERSATION, None, None, "t:1"), gym_tokenizer, max_length=512)
    assert trained_text(gym_tokenizer, encoded) == "Dorn.<|end|> | Mirel, on the river.<|end|>"
    assert len(encoded.input_ids) == len(encoded.completion_mask)


def test_chatml_masks_content_and_im_end_but_not_headers_or_newline(chatml_tokenizer):
    encoded = encode_sft(SFTExample(CONVERSATION, None, None, "t:1"), chatml_tokenizer, max_length=512)
    assert trained_text(chatml_tokenizer, encoded) == "Dorn.<|im_end|> | Mirel, on the river.<|im_end|>"
    # The "\n" the template puts after each <|im_end|> is context: a model stops at its EOS and never makes it.
    assert chatml_tokenizer.decode(encoded.input_ids[-1:]) == "\n" and encoded.completion_mask[-1] == 0


@pytest.mark.parametrize("which", ["gym_tokenizer", "chatml_tokenizer"])
def test_prompt_plus_response_matches_the_sft_encoding(which, request):
    # encode_prompt + encode_response (what DPO/PPO use) must agree with encode_sft on a one-turn chat.
    tokenizer = request.getfixturevalue(which)
    prompt, response = CONVERSATION[:2], "Dorn."
    prompt_ids = encode_prompt(prompt, tokenizer)
    response_ids = encode_response(prompt_ids, response, tokenizer)
    assert response_ids[-1] == tokenizer.eos_token_id
    sft = encode_sft(SFTExample([*prompt, {"role": "assistant", "content": response}], None, None, "t:1"),
                     tokenizer, max_length=512)
    n = len(prompt_ids) + len(response_ids)
    assert sft.input_ids[:n] == prompt_ids + response_ids
    assert sft.completion_mask[:n] == [0] * len(prompt_ids) + [1] * len(response_ids)


@pytest.mark.parametrize("which", ["gym_tokenizer", "chatml_tokenizer"])
def test_encode_completion_is_the_row_a_preference_loop_scores(which, request):
    tokenizer = request.getfixturevalue(which)
    encoded = encode_completion(CONVERSATION[:2], "Dorn.", tokenizer, max_length=512)
    eos = tokenizer.eos_token
    assert trained_text(tokenizer, encoded) == f"Dorn.{eos}"
    prompt_ids = encode_prompt(CONVERSATION[:2], tokenizer)
    assert encoded.input_ids[:len(prompt_ids)] == prompt_ids and not any(encoded.completion_mask[:len(prompt_ids)])
    # one token too long: the response is kept whole, the prompt loses its first token after the BOS
    cut = encode_completion(CONVERSATION[:2], "Dorn.", tokenizer, max_length=len(encoded.input_ids) - 1)
    assert cut.truncated and trained_text(tokenizer, cut) == f"Dorn.{eos}" and len(cut.input_ids) == len(
        encoded.input_ids) - 1
    if tokenizer.bos_token_id is not None and prompt_ids[0] == tokenizer.bos_token_id:
        assert cut.input_ids == encoded.input_ids[:1] + encoded.input_ids[2:]
    else:
        assert cut.input_ids == encoded.input_ids[1:]


def test_a_long_prompt_keeps_its_end_and_the_response(gym_tokenizer):
    """The turn being answered is at the end of the prompt: a row too long keeps it and the response, not the
    start of a long context (rows cut on the right lost their whole response and trained on nothing)."""
    context = " ".join(f"word{i}" for i in range(300))
    prompt = [{"role": "user", "content": context + " What is the capital of Veloria?"}]
    full = encode_completion(prompt, "Dorn.", gym_tokenizer, max_length=4096)
    cut = encode_completion(prompt, "Dorn.", gym_tokenizer, max_length=64)
    assert cut.truncated and len(cut.input_ids) == 64 and trained_text(gym_tokenizer, cut) == "Dorn.<|end|>"
    assert cut.input_ids[0] == gym_tokenizer.bos_token_id and cut.input_ids[1:] == full.input_ids[-63:]
    assert "Veloria?" in gym_tokenizer.decode(cut.input_ids)
    # the prompt's share when prompt and response do not fit together: max_prompt_length, else half
    long_answer = " ".join(["yes"] * 200)
    both = encode_completion(prompt, long_answer, gym_tokenizer, max_length=64, max_prompt_length=16)
    assert len(both.input_ids) == 64 and both.completion_mask.count(0) == 16 and both.completion_mask[-1] == 1
    half = encode_completion(prompt, long_answer, gym_tokenizer, max_length=64)
    assert half.completion_mask.count(0) == 32


def test_text_form_is_prompt_then_completion_then_eos(gym_tokenizer):
    encoded = encode_sft(SFTExample(None, "Q: 17 + 25?", " A: 42", "t:1"), gym_tokenizer, max_length=512)
    assert trained_text(gym_tokenizer, encoded) == " A: 42<|end|>"
    assert gym_tokenizer.decode(encoded.input_ids) == "Q: 17 + 25? A: 42<|end|>"


def test_a_long_conversation_is_flagged_and_cut_on_the_right(gym_tokenizer):
    example = SFTExample(CONVERSATION, None, None, "t:1")
    full = encode_sft(example, gym_tokenizer, max_length=512)
    cut = encode_sft(example, gym_tokenizer, max_length=10)
    assert cut.truncated and len(cut.input_ids) == 10
    assert cut.input_ids == full.input_ids[:10] and cut.completion_mask == full.completion_mask[:10]


def test_a_template_that_is_not_prefix_stable_is_refused(chatml_tokenizer):
    unstable = copy.deepcopy(chatml_tokenizer)               # the module fixture stays untouched
    unstable.chat_template = UNSTABLE_TEMPLATE
    with pytest.raises(TemplateError, match=r"^data.jsonl:4: the chat template .* is not prefix-stable at assistant"
                                            r" turn 2"):
        encode_sft(SFTExample(CONVERSATION, None, None, "data.jsonl:4"), unstable, max_length=512)


def test_chat_data_with_a_tokenizer_without_template_is_a_clear_error(chatml_tokenizer):
    plain = copy.deepcopy(chatml_tokenizer)
    plain.chat_template = None
    with pytest.raises(TemplateError, match="has no chat template"):
        encode_sft(SFTExample(CONVERSATION, None, None, "t:1"), plain, max_length=512)
    assert encode_prompt("text prompts need no template", plain)
