"""People as the annotators of the online RLHF loop (`online.annotator: platform`): the annotator interface of
`alignlab.annotators` (`compare`, `rank`, `equally_good`), answered through the platform's JSON API.

Each call posts a task (idempotent: the key is a hash of the prompt's id and the responses, so a restarted loop
re-attaches to the same item) and waits until `min_labels` people have labelled it.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field

import httpx

from alignlab.annotate.schema import CRITERIA
from alignlab.data.records import PromptRecord


@dataclass
class PlatformAnnotator:
    base_url: str
    api_token: str
    """A token of an admin of `project` (home page → "Create API token", or `alignlab annotate token`)."""
    project: int
    criterion: str = "helpful"
    """Which of the pairwise verdicts (helpful / honest / harmless) answers `.compare`."""
    min_labels: int = 1
    poll_s: float = 2.0
    timeout_s: float | None = None
    """Give up (TimeoutError) after this many seconds without enough labels; None waits as long as it takes."""
    _http: httpx.Client = field(init=False, repr=False)
    _seen: dict = field(init=False, repr=False, default_factory=dict)    # task key → labels, for equally_good

    def __post_init__(self):
        assert self.criterion in CRITERIA, f"criterion must be one of {CRITERIA}"
        self._http = httpx.Client(base_url=self.base_url.rstrip("/"), timeout=30.0,
                                  headers={"Authorization": f"Bearer {self.api_token}"})

    @property
    def annotator_id(self) -> str:
        """Provenance the RLHF loop writes next to each pair (as the simulated annotators' ids)."""
        return f"platform:{self.base_url}/projects/{self.project}:{self.criterion}"

    def compare(self, item: PromptRecord, a: str, b: str) -> int:
        """0 if people prefer `a`, 1 if `b`: the majority verdict on `criterion`; an even split or all-tie is
        broken by a coin seeded with the task key (so a re-run gets the same answer)."""
        key = _key(item.id, [a, b])
        winners = [label["criteria"][self.criterion]["winner"] for label in self._pair_labels(item, a, b)]
        votes_a, votes_b = winners.count(0), winners.count(1)
        if votes_a != votes_b:
            return 0 if votes_a > votes_b else 1
        return int(key, 16) % 2

    def equally_good(self, item: PromptRecord, a: str, b: str) -> bool:
        """People called the two equally good: no label on `criterion` names a winner."""
        return all(label["criteria"][self.criterion]["winner"] not in (0, 1)
                   for label in self._pair_labels(item, a, b))

    def _pair_labels(self, item: PromptRecord, a: str, b: str) -> list[dict]:
        key = _key(item.id, [a, b])
        if key not in self._seen:
            self._seen = {key: self._labels(key, "pairwise", item.prompt, [a, b])}    # the last pair only
        return self._seen[key]

    def rank(self, item: PromptRecord, responses: list[str]) -> list[int]:
        """Rank of each response, 0 = best: the mean rank over labels (best-of-K labels rank the rest equal)."""
        labels = self._labels(_key(item.id, responses), "rank", item.prompt, responses)
        k = len(responses)
        mean = [0.0] * k
        for label in labels:
            ranks = [0] * k
            if "ranking" in label:
                for rank, index in enumerate(label["ranking"]):
                    ranks[index] = rank
            else:
                ranks = [0 if i == label["best"] else 1 for i in range(k)]
            mean = [m + r / len(labels) for m, r in zip(mean, ranks)]
        order = sorted(range(k), key=lambda i: (mean[i], i))
        return [order.index(i) for i in range(k)]

    def _labels(self, key: str, kind: str, prompt, responses: list[str]) -> list[dict]:
        start = time.monotonic()
        r = self._call(start, "POST", f"/api/v1/projects/{self.project}/requests",
                       json={"request_key": key, "kind": kind, "prompt": prompt, "responses": responses})
        item_id = r.json()["item_id"]
        while True:
            labels = self._call(start, "GET", f"/api/v1/items/{item_id}/labels").json()["labels"]
            if len(labels) >= self.min_labels:
                return labels
            self._wait(start, f"nobody answered in time: item {item_id} in project {self.project} at "
                              f"{self.base_url} has {len(labels)} of {self.min_labels} labels; ask annotators to "
                              "work its queue, or raise online.annotator_options.timeout_s")

    def _call(self, start: float, method: str, path: str, **kw) -> httpx.Response:
        """One API call; while the platform is unreachable (restarting), retry every poll_s until timeout_s."""
        while True:
            try:
                r = self._http.request(method, path, **kw)
            except httpx.TransportError as e:
                self._wait(start, f"annotation platform at {self.base_url} unreachable ({e})")
                continue
            if r.status_code >= 400:
                raise RuntimeError(f"annotation platform {method} {r.request.url}: {r.status_code} {r.text[:300]}")
            return r

    def _wait(self, start: float, why: str) -> None:
        if self.timeout_s is not None and time.monotonic() - start > self.timeout_s:
            raise TimeoutError(f"{why} (waited {self.timeout_s}s)")
        time.sleep(self.poll_s)


def _key(request_id: str, responses: list[str]) -> str:
    return hashlib.sha256("\0".join([request_id, *responses]).encode()).hexdigest()[:40]



def platform_annotators(seed: int = 0, items=(), url: str = "http://127.0.0.1:8000", project: int = 1,
                        token_env: str = "ALIGNLAB_ANNOTATE_TOKEN", criterion: str = "helpful", min_labels: int = 1,
                        timeout_s: float | None = 600.0, poll_s: float = 2.0) -> list[PlatformAnnotator]:
    """`online.annotator: platform`: people labelling in project `project` of a running `alignlab annotate serve`.
    The API token (an admin's of that project: `alignlab annotate token --as EMAIL`) is read from the environment
    variable `token_env`, never from a config file."""
    token = os.environ.get(token_env)
    if not token:
        raise ValueError(f"no API token in ${token_env}: create one with `alignlab annotate token --as ADMIN_EMAIL` "
                         f"and export {token_env}=TOKEN (or set online.annotator_options.token_env)")
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {', '.join(CRITERIA)}, got {criterion!r}")
    return [PlatformAnnotator(url, token, project, criterion, min_labels, poll_s, timeout_s)]


@dataclass
class PlatformPeople:
    """People of a platform project as PALMS's editors and evaluators (alignlab.palms.People): drafts go out as
    "review and edit" tasks, blind pairs as blind evaluation tasks; every task of a batch is posted first (people work
    in parallel), then each is awaited. Keys make posting idempotent: a re-run re-attaches to the same items."""
    base_url: str
    api_token: str
    project: int
    min_labels: int = 1
    """Labels awaited per blind pair (an edit needs one editor)."""
    poll_s: float = 2.0
    timeout_s: float | None = None

    def __post_init__(self):
        self._client = PlatformAnnotator(self.base_url, self.api_token, self.project, "helpful", self.min_labels,
                                         self.poll_s, self.timeout_s)

    @property
    def name(self) -> str:
        return f"platform:{self.base_url}/projects/{self.project}"

    def _post(self, start: float, key: str, kind: str, prompt, **fields) -> int:
        body = {"request_key": key, "kind": kind, "prompt": prompt, **fields}
        return self._client._call(start, "POST", f"/api/v1/projects/{self.project}/requests", json=body) \
            .json()["item_id"]

    def _await(self, start: float, item_id: int, wanted: int) -> list[dict]:
        while True:
            labels = self._client._call(start, "GET", f"/api/v1/items/{item_id}/labels").json()["labels"]
            if len(labels) >= wanted:
                return labels
            self._client._wait(start, f"item {item_id} in project {self.project} at {self.base_url} has "
                                      f"{len(labels)} of {wanted} labels; ask people to work its queue")

    def edit(self, requests: list[dict]) -> list[str]:
        """[{"key", "prompt", "draft", "topic"}] → the editor's answer for each."""
        start = time.monotonic()
        ids = [self._post(start, r["key"], "edit", r["prompt"], draft=r["draft"]) for r in requests]
        return [self._await(start, item_id, 1)[0]["answer"] for item_id in ids]

    def judge(self, requests: list[dict]) -> list[list[float]]:
        """[{"key", "prompt", "answers": [(text, model), (text, model)]}] → per pair, one outcome per label for the
        first answer on the "helpful" criterion: 1 better, 0 worse, 0.5 tie."""
        start = time.monotonic()
        ids = [self._post(start, r["key"], "blind", r["prompt"],
                          responses=[{"text": t, "model": m} for t, m in r["answers"]]) for r in requests]
        out = []
        for item_id in ids:
            winners = [label["criteria"]["helpful"]["winner"] for label in self._await(start, item_id,
                                                                                       self.min_labels)]
            out.append([1.0 if w == 0 else 0.0 if w == 1 else 0.5 for w in winners])
        return out
