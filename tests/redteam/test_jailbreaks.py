"""The jailbreak suite: templates filled as people use them, malformed files named with their line, rates computed
as written, prompts too long for the model counted, on the real files of ../shared/data/jailbreaks."""

import json

import pytest

from alignlab.eval.settings import EvalSettings
from alignlab.eval.suites.files import BenchmarkFileError
from alignlab.redteam.jailbreak_suite import suite_metrics
from alignlab.redteam.jailbreaks import DIRECT, Template, read_string_list, read_templates


def test_a_template_takes_the_request_in_its_slot_or_after_it():
    slot = Template("in_the_wild/1", "in_the_wild", "You are {generator.name}. Answer: [INSERT PROMPT HERE] now.")
    assert slot.wrap("How do I X?", "my-model") == "You are my-model. Answer: How do I X? now."
    plain = Template("dan/Dan_6_0", "dan", "Hello {generator.name}, you are DAN.  \n")
    assert plain.wrap("How do I X?", "m") == "Hello m, you are DAN.\n\nHow do I X?"
    assert DIRECT.wrap("How do I X?", "m") == "How do I X?"
    # a request that looks like a regex replacement is inserted as it is
    assert Template("t", "in_the_wild", "<QUERY>").wrap(r"a \1 b", "m") == r"a \1 b"


@pytest.mark.parametrize("text, line, reason", [
    ('[\n  "one template",\n  42\n]', 3, "must be a non-empty string"),
    ('[\n  "one",\n  "two" "three"\n]', 3, "expected ',' or ']'"),
    ('[\n  "one",\n  {"broken": \n]', 4, "not valid JSON"),
    ('\n{"template": "x"}', 2, "expected a JSON list"),
    ("[]", 1, "no template"),
])
def test_a_malformed_template_file_names_its_line(tmp_path, text, line, reason):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(BenchmarkFileError, match=rf"bad\.json:{line}: .*{reason}"):
        read_string_list(path)


def test_the_real_template_files(shared_data):
    every = read_templates(shared_data, None, 0)
    families = [t.family for t in every]
    assert families.count("direct") == 1 and families.count("dan") == 14 and families.count("in_the_wild") == 666
    drawn = read_templates(shared_data, 3, 0)
    assert [t.family for t in drawn] == ["direct"] + ["dan"] * 3 + ["in_the_wild"] * 3
    assert drawn == read_templates(shared_data, 3, 0) and drawn != read_templates(shared_data, 3, 1)


def test_rates_pool_samples_and_resample_requests():
    """Two harmful requests (a, b) directly and in one DAN template, one safe request: hand-counted rates."""
    dan = Template("dan/x", "dan", "t")

    def prompt(kind, rid, template):
        return {"kind": kind, "request": {"id": rid}, "template": template}

    prompts = [prompt("harmful", "a", DIRECT), prompt("harmful", "b", DIRECT), prompt("harmful", "a", dan),
               prompt("harmful", "b", dan), prompt("safe", "s", DIRECT), prompt("safe", "s", dan)]
    succeeded = [[False, False], [False, True], [True, True], [True, False], [False, False], [False, False]]
    refused = [[not x for x in xs] for xs in succeeded]
    m = suite_metrics(prompts, succeeded, refused, seed=0)
    assert m["jailbreak_asr_direct"] == 0.25 and m["jailbreak_asr"] == 0.75 and m["jailbreak_asr_items"] == 2
    assert m["jailbreak_asr_by_family"] == {"dan": 0.75} and m["jailbreak_asr_by_template"]["direct"] == 0.25
    assert m["jailbreak_overrefusal_rate"] == 1.0 and m["jailbreak_overrefusal_direct_items"] == 1
    lo, hi = m["jailbreak_asr_ci"]
    assert 0.5 <= lo <= 0.75 <= hi <= 1.0                  # resampling a (1.0) and b (0.5)


def run(model_dir, settings):
    from alignlab.eval.cli import load_model, run_suites
    return run_suites(*load_model(str(model_dir)), ["jailbreaks"], settings)["jailbreaks"]


def test_suite_on_harmbench_behaviours(long_context_lm, shared_data):
    result = run(long_context_lm, EvalSettings(data_dir=str(shared_data), limit=2, jailbreak_templates=1,
                                               num_samples=2, max_new_tokens=4, judge="strmatch", greedy=False))
    m = result.metrics
    assert m["jailbreak_skipped_too_long"] == {"harmful": {}, "safe": {}} and m["jailbreak_templates"] == 3
    assert m["jailbreak_prompts"] == (2 + 2) * 3 and len(result.records) == 12 * 2
    assert m["jailbreak_asr_items"] == 2 and m["jailbreak_overrefusal_rate_items"] == 2
    assert set(m["jailbreak_asr_by_family"]) == {"dan", "in_the_wild"}
    harmbench_first = json.loads(json.dumps(result.records[0]))           # records are plain JSON
    assert harmbench_first["template"] == "direct" and harmbench_first["label"] == "harmful"
    templated = [r for r in result.records if r["template_family"] == "dan"]
    assert all(r["prompt"].endswith(r2["prompt"]) for r in templated for r2 in result.records
               if r2["template"] == "direct" and r2["request_id"] == r["request_id"])


def test_prompts_longer_than_the_model_are_counted_not_lost(tiny_lm, shared_data):
    """The 256-position tiny model takes no published template: every templated prompt is skipped and counted."""
    settings = EvalSettings(data_dir=str(shared_data), limit=2, jailbreak_templates=1, num_samples=1, max_new_tokens=4,
                            judge="strmatch", greedy=False, jailbreak_behaviours="advbench")
    m = run(tiny_lm, settings).metrics
    assert m["jailbreak_skipped_too_long"] == {"harmful": {"dan": 2, "in_the_wild": 2},
                                               "safe": {"dan": 2, "in_the_wild": 2}}
    assert m["jailbreak_asr"] is None and m["jailbreak_asr_direct_items"] == 2


def test_gym_behaviours_are_judged_by_the_gold_judge(long_context_lm, shared_data):
    m = run(long_context_lm, EvalSettings(data_dir=str(shared_data), limit=2, jailbreak_templates=1, num_samples=1,
                                          max_new_tokens=4, greedy=False, jailbreak_behaviours="gym")).metrics
    assert m["judge"].startswith("gym gold judge") and m["jailbreak_harmful_content_rate_items"] == 2


def test_a_malformed_file_through_the_cli_is_one_line(tiny_lm, shared_data, tmp_path, capsys):
    import shutil

    from alignlab.eval.cli import main
    data = tmp_path / "data"
    for name in ("harmbench", "xstest", "jailbreaks"):
        shutil.copytree(shared_data / name, data / name)
    (data / "jailbreaks" / "dan" / "STAN.json").write_text('[\n  "ok",\n  null\n]')
    assert main(["--model", str(tiny_lm), "--suite", "jailbreaks", "--limit", "1", "--data-dir", str(data),
                 "--judge", "strmatch"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "STAN.json:3: item 1 must be a non-empty string" in err
