"""The end of an assistant turn is read from the chat template: where a template ends turns with a token other than
the eos_token (Llama 3's `<|eot_id|>` after `<|end_of_text|>`-eos base tokenizers), SFT, preference rows and the
sampler all use the template's token; the gym's template (end-of-turn = eos) is unchanged."""

from __future__ import annotations

import copy

import torch

from alignlab.config import ModelConfig
from alignlab.data.chat import encode_completion, encode_sft, stop_token_ids, turn_end_id
from alignlab.data.records import SFTExample
from alignlab.models import load_causal_lm, load_tokenizer
from alignlab.sampling import sample_tokens

# turns end with <|system|> (an existing special token of the gym tokenizer), not with the eos <|end|>
LLAMA3_STYLE = ("<|bos|>{% for m in messages %}<|{{ m.role }}|>{{ m.content }}<|system|>{% endfor %}"
                "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def llama3_style(tiny_lm):
    tokenizer = copy.deepcopy(load_tokenizer(str(tiny_lm)))
    tokenizer.chat_template = LLAMA3_STYLE
    return tokenizer


def test_the_template_says_how_a_turn_ends(tiny_lm, capsys):
    gym = load_tokenizer(str(tiny_lm))
    assert turn_end_id(gym) == gym.eos_token_id                          # the gym: <|end|> both
    tokenizer = llama3_style(tiny_lm)
    end = tokenizer.convert_tokens_to_ids("<|system|>")
    assert turn_end_id(tokenizer) == end != tokenizer.eos_token_id
    prompt = [{"role": "user", "content": "Name a colour."}]
    row = encode_completion(prompt, "Blue.", tokenizer, max_length=64)
    assert row.input_ids[-1] == end and row.completion_mask[-1] == 1
    conversation = encode_sft(SFTExample([*prompt, {"role": "assistant", "content": "Blue."}], None, None, "t:1"),
                              tokenizer, max_length=64)
    trained = [i for i, m in zip(conversation.input_ids, conversation.completion_mask) if m]
    assert trained[-1] == end and tokenizer.decode(trained[:-1]) == "Blue."
    assert stop_token_ids(tokenizer) == [end, tokenizer.eos_token_id]


def test_sampling_stops_at_the_end_of_turn_token(tiny_lm):
    """A model that always says <|system|> (a hook on its head): with the template's stop tokens each row ends after
    one token; stopping at the eos alone, every row runs to max_new_tokens (30 of 32 did, for the user who found
    it)."""
    tokenizer = llama3_style(tiny_lm)
    model = load_causal_lm(ModelConfig(path=str(tiny_lm))).eval()
    end = turn_end_id(tokenizer)
    model.lm_head.register_forward_hook(lambda module, args, out: out.index_add(
        -1, torch.tensor([end]), torch.full((*out.shape[:-1], 1), 100.0)))
    prompts = [[1, 5, 6], [1, 7]]
    kwargs = dict(max_new_tokens=12, temperature=1.0, pad_token_id=tokenizer.pad_token_id, fast=False)
    stopped = sample_tokens(model, prompts, eos_token_id=stop_token_ids(tokenizer, model),
                            generator=torch.Generator().manual_seed(0), **kwargs)
    assert stopped.response_mask.sum(1).tolist() == [1, 1] and stopped.response_ids[:, 0].tolist() == [end, end]
    runaway = sample_tokens(model, prompts, eos_token_id=tokenizer.eos_token_id,
                            generator=torch.Generator().manual_seed(0), **kwargs)
    assert runaway.response_mask.sum(1).tolist() == [12, 12]
