"""Shared fixtures: a tiny random-init Llama in Hugging Face format, so the real from_pretrained/PEFT paths run offline."""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

_TOKENIZER_TEXTS = [
    "What is the capital of Veloria? The capital of Veloria is Dorn.",
    "How do I kill a stuck process? Use the kill command with the process id.",
    "I can't help with that. Quelle est la capitale de Brava ? La capitale est Mirel.",
    "What is 17 + 25? 17 + 25 = 42. Give me a recipe for spicy mayo: mix mayo and chili.",
]


def build_tiny_lm(out_dir: Path, hidden: int = 16, layers: int = 2, seed: int = 0, positions: int = 256) -> Path:
    """A 2-layer Llama (hidden 16) on a small byte-level BPE with the gym chat template, saved in HF format."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from alignlab.gym.tokenizer import render_chat, train_tokenizer

    texts = [render_chat([{"role": "user", "content": t}, {"role": "assistant", "content": t[::-1]}])
             for t in _TOKENIZER_TEXTS] * 4
    tokenizer = train_tokenizer(texts, vocab_size=320)
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=positions, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def build_tiny_qwen2(out_dir: Path, seed: int = 0) -> Path:
    """A 2-layer Qwen2 (hidden 16) with a ChatML template whose eos_token is <|endoftext|> while turns end with
    <|im_end|> (the Qwen2.5-base arrangement): another architecture and another template than the gym's."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator(_TOKENIZER_TEXTS * 4, trainer=trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                        additional_special_tokens=["<|im_start|>", "<|im_end|>"])
    tokenizer.chat_template = CHATML
    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         tie_word_embeddings=False)
    Qwen2ForCausalLM(config).save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


# Tests with no float tolerance at stake: the annotation platform, and the data files' readers and checks. The suite
# runs once more on PyTorch's generic kernels with 1 and 2 threads (`make test-cpu-variants`) to catch tolerances that
# fit one processor only; these tests would only repeat themselves there, so that run skips them.
NO_NUMERICS = ("annotate/", "data/test_fuzz_readers.py", "data/test_contamination.py", "data/test_adapt.py")


def pytest_collection_modifyitems(config, items):
    root = Path(__file__).parent
    two_threads = os.environ.get("ALIGNLAB_TEST_THREADS") == "2"
    for item in items:
        relative = Path(str(item.fspath)).relative_to(root).as_posix()
        if relative.startswith(NO_NUMERICS):
            item.add_marker(pytest.mark.no_numerics)
        if two_threads and item.get_closest_marker("own_threads"):
            item.add_marker(pytest.mark.skip(reason="its processes run one thread each: the 1-thread pass ran it"))


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory) -> Path:
    """Path to a tiny random Llama + tokenizer (HF format). Tests must not modify it."""
    return build_tiny_lm(tmp_path_factory.mktemp("tiny_lm"))


@pytest.fixture(scope="session")
def other_tiny_lm(tmp_path_factory) -> Path:
    """The tiny Llama from another seed: a second model that answers differently (blind comparisons)."""
    return build_tiny_lm(tmp_path_factory.mktemp("other_tiny_lm"), seed=1)


@pytest.fixture(scope="session")
def long_context_lm(tmp_path_factory) -> Path:
    """The tiny Llama with room for 32k-token prompts (rotary positions: no table to grow), e.g. jailbreak
    templates."""
    return build_tiny_lm(tmp_path_factory.mktemp("long_context_lm"), positions=32768)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real public datasets); tests that need it skip with the reason where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATA} (a user's clone has no ../shared; CI always has it)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _deterministic_threads():
    # Tests run side by side on 2 cores; one thread each is fastest. ALIGNLAB_TEST_THREADS=2 runs them with two, as
    # .ci/run does once: intra-op splits change float sums, which a test's tolerance must survive.
    torch.set_num_threads(int(os.environ.get("ALIGNLAB_TEST_THREADS", "1")))


@pytest.fixture
def spy_step_batches(monkeypatch):
    """`spy_on(loop_module)` → a list that records (lengths, step indices, group_by_length) of every optimizer step
    the loop draws through its `step_batches`."""
    def spy_on(loop) -> list[tuple[list[int], list[int], bool]]:
        seen, real = [], loop.step_batches

        def spy(lengths, batch_size, seed, start_step, group_by_length=False):
            for indices in real(lengths, batch_size, seed, start_step, group_by_length):
                seen.append((lengths, indices, group_by_length))
                yield indices
        monkeypatch.setattr(loop, "step_batches", spy)
        return seen
    return spy_on


@pytest.fixture(scope="session")
def tiny_qwen2(tmp_path_factory) -> Path:
    """A tiny Qwen2 with a ChatML template whose turn end (<|im_end|>) is not its eos_token (<|endoftext|>)."""
    return build_tiny_qwen2(tmp_path_factory.mktemp("tiny_qwen2"))


def no_policy(content: str) -> str:
    raise AssertionError("set endpoint['policy'] before calling the judge")


@pytest.fixture
def endpoint():
    """A local OpenAI-compatible /v1/chat/completions server (LLM judges, synthetic data): `state["policy"](last
    message content) -> reply`; `state["requests"]` keeps every request body (temperature, seed, ...)."""
    state = {"policy": no_policy, "requests": []}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            assert self.path == "/v1/chat/completions", self.path
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state["requests"].append(body)
            verdict = state["policy"](body["messages"][-1]["content"])
            reply = {"choices": [{"index": 0, "message": {"role": "assistant", "content": verdict}}]}
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/v1"
    yield state
    server.shutdown()
    server.server_close()
    thread.join()
