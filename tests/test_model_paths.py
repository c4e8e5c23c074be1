"""Model paths chain: a LoRA run's output directory is accepted wherever a model is asked for (dpo, rm, ppo, eval);
a local path that does not exist says so instead of trying the hub."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alignlab.cli import main
from alignlab.config import ConfigError
from alignlab.models import model_dir

REPO = Path(__file__).resolve().parents[1]
PAIRS = [{"prompt": [{"role": "user", "content": q}], "chosen": good, "rejected": bad}
         for q, good, bad in [("What is 2 + 2?", "4.", "5."), ("Name a colour.", "Blue.", "A spoon."),
                              ("Say hi.", "Hi!", "No."), ("Capital of France?", "Paris.", "Rome.")] * 2]


@pytest.fixture(scope="module")
def lora_run(tiny_lm, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lora") / "sft"
    assert main(["sft", "configs/tiny/sft.yaml", f"model.path={tiny_lm}", f"run.out_dir={out}",
                 "model.lora.enabled=true", "optim.max_steps=2"]) == 0
    assert (out / "model" / "adapter_config.json").is_file() and (out / "model" / "merged").is_dir()
    return out / "model"


def test_a_lora_output_is_accepted_by_dpo_rm_ppo_and_eval(lora_run, tmp_path, capsys):
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    assert model_dir(lora_run) == str(lora_run / "merged")
    assert main(["dpo", "configs/tiny/dpo.yaml", f"model.path={lora_run}", f"data.train_files=[{prefs}]",
                 f"run.out_dir={tmp_path / 'dpo'}", "optim.max_steps=1"]) == 0
    assert main(["rm", "configs/tiny/rm.yaml", f"model.path={lora_run}", f"data.train_files=[{prefs}]",
                 f"run.out_dir={tmp_path / 'rm'}", "optim.max_steps=1", "gold.enabled=false",
                 "normalize.prompts=4"]) == 0
    assert main(["ppo", "configs/tiny/ppo.yaml", f"model.path={lora_run}", f"reward_model.path={tmp_path}/rm/model",
                 "data.source=files", f"data.files=[{prefs}]", "log_rewards=[]", f"run.out_dir={tmp_path / 'ppo'}",
                 "iterations=1"]) == 0
    assert main(["eval", "--model", str(lora_run), "--suite", "gym", "--limit", "4", "--num-samples", "1",
                 "--max-new-tokens", "4"]) == 0
    assert "gym:" in capsys.readouterr().out


def test_a_missing_local_path_says_so(tmp_path, capsys):
    for path in ("runs/no-such-run/model", "./nothing", str(tmp_path / "absent")):
        with pytest.raises(ConfigError, match="does not exist"):
            model_dir(path)
    assert model_dir("someone/some-model") == "someone/some-model"            # a hub id is left to the hub
    assert main(["sft", "configs/tiny/sft.yaml", "model.path=runs/no-such-run/model",
                 f"run.out_dir={tmp_path / 'x'}"]) == 2
    assert "model path runs/no-such-run/model does not exist" in capsys.readouterr().err


def test_lora_targets_per_architecture_all_linear_and_a_wrong_name(tiny_lm, tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    from alignlab.config import LoraConfig, ModelConfig
    from alignlab.models import load_causal_lm
    gpt2 = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=64, n_positions=32)).save_pretrained(gpt2)

    def adapted(path, names):
        model = load_causal_lm(ModelConfig(path=str(path), lora=LoraConfig(enabled=True, r=2, target_modules=names)))
        return sorted({n.split(".lora_A")[0].rsplit(".", 1)[-1] for n, _ in model.named_parameters() if "lora_A" in n})
    assert adapted(tiny_lm, []) == ["k_proj", "o_proj", "q_proj", "v_proj"]
    assert adapted(gpt2, []) == ["c_attn", "c_proj"]
    assert set(adapted(tiny_lm, ["all-linear"])) >= {"q_proj", "gate_proj", "down_proj"}
    with pytest.raises(ConfigError, match=r"\['qkv'\] name no linear layer of this gpt2 model .*c_attn"):
        adapted(gpt2, ["qkv"])


def test_a_chat_template_from_the_config_is_used_and_saved(tiny_lm, tmp_path):
    from alignlab.data.chat import turn_end_id
    from alignlab.models import load_tokenizer
    template = tmp_path / "t.jinja"
    template.write_text("{% for m in messages %}<|{{ m.role }}|>{{ m.content }}<|system|>{% endfor %}"
                        "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    assert main(["sft", "configs/tiny/sft.yaml", f"model.path={tiny_lm}", f"run.out_dir={tmp_path / 'run'}",
                 f"model.chat_template={template}", "optim.max_steps=1"]) == 0
    saved = load_tokenizer(str(tmp_path / "run" / "model"))
    assert saved.chat_template == template.read_text()
    assert turn_end_id(saved) == saved.convert_tokens_to_ids("<|system|>")
