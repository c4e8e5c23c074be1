import copy

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from alignlab.eval.divergence import kl_to_reference, response_logps
from alignlab.data.chat import encode_prompt
from alignlab.sampling import sample_tokens

PROMPTS = [[{"role": "user", "content": "What is the capital of Veloria?"}], [{"role": "user", "content": "Hi"}]]


def test_kl_of_a_model_to_itself_is_zero_and_positive_to_another(tiny_lm):
    policy = AutoModelForCausalLM.from_pretrained(tiny_lm).eval()
    tok = AutoTokenizer.from_pretrained(tiny_lm)
    same = kl_to_reference(policy, copy.deepcopy(policy), tok, PROMPTS, num_samples=3, max_new_tokens=8)
    assert abs(same["kl"]) < 1e-4
    other = copy.deepcopy(policy)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.5 * torch.randn_like(p))
    assert kl_to_reference(policy, other, tok, PROMPTS, num_samples=8, max_new_tokens=8)["kl"] > 0.05


def test_response_logps_reproduce_sampling_logps(tiny_lm):
    model = AutoModelForCausalLM.from_pretrained(tiny_lm).eval()
    tok = AutoTokenizer.from_pretrained(tiny_lm)
    batch = sample_tokens(model, [encode_prompt(p, tok) for p in PROMPTS], max_new_tokens=6, temperature=1.0,
                          eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                          generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(response_logps(model, batch), batch.logps, atol=1e-5, rtol=0)
