"""The README's "your own model" quickstart, as a user runs it: configs/examples/pipeline.yaml on a model of another
architecture and chat template than the gym's (a tiny Qwen2 whose turns end with <|im_end|> while its eos_token is
<|endoftext|>), SFT data and preference pairs made from the HH-RLHF dialogues, the XSTest suite, and the report."""

from __future__ import annotations

import gzip
import json

import yaml

from alignlab.cli import main
from alignlab.data.io import read_preferences


def test_quickstart_sft_dpo_eval_report_on_a_qwen2_model(tiny_qwen2, tmp_path, shared_data, capsys):
    model = tiny_qwen2
    hh = shared_data / "hh-rlhf" / "harmless-base" / "test.jsonl.gz"
    pairs = read_preferences(hh)[:48]
    sft = tmp_path / "sft.jsonl"
    sft.write_text("".join(json.dumps({"messages": p.prompt + [{"role": "assistant", "content": p.chosen}]}) + "\n"
                           for p in pairs))
    prefs = tmp_path / "prefs.jsonl.gz"
    with gzip.open(hh, "rt") as f, gzip.open(prefs, "wt") as out:
        out.writelines(line for _, line in zip(range(48), f))             # HH's own form, as downloaded
    config = yaml.safe_load(open("configs/examples/pipeline.yaml"))
    config["run_dir"] = str(tmp_path / "run")
    config["eval"] |= {"limit": 6, "max_new_tokens": 8, "data_dir": str(shared_data)}
    stages = {s["name"]: s for s in config["stages"]}
    stages["base"]["model"] = str(model)
    stages["sft"]["data"], stages["dpo"]["data"] = str(sft), str(prefs)
    for name in ("sft", "dpo"):
        stages[name]["overrides"] = ["optim.max_steps=2", "optim.lr=1e-3", "run.save_every=0", "data.max_length=256"]
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["pipeline", str(path)]) == 0
    err = capsys.readouterr().err
    assert "ends an assistant turn with '<|im_end|>', not the eos_token '<|endoftext|>'" in err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert {"base", "sft", "dpo"} <= set(metrics)
    assert all("overrefusal_rate" in metrics[s] or "refusal_unsafe_rate" in metrics[s] for s in ("base", "sft", "dpo"))
    assert (tmp_path / "run" / "report.html").stat().st_size > 1000
    card = (tmp_path / "run" / "dpo" / "model" / "README.md").read_text()
    assert "prefs.jsonl.gz` sha256" in card
