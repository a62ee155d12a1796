"""Nginx's response cache on the real stack (nginx/lua/twinserve/cache.lua): sentiment, whose settings
say deterministic, is cached on its production routes; a second identical request is a HIT that never
reaches TorchServe; staging and uncached models BYPASS; and after a swap or a rollback returns no
request gets an answer of the version that left production, under a workload where 95% of the
requests repeat 20 sentences. A full dictionary evicts its least recently used entries, and an answer
over the entry bound is never stored (a spare Nginx with a small dictionary).

The tests share one stack (tests/integration/conftest.py) and leave each model's colour as they found it.
"""

import dataclasses
import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.integration.helpers import scrape, total
from tests.integration.test_models import ROW, colours
from twinserve.release import deploy, promote
from twinserve.runtime import nginx
from twinserve.store.state import read_production

pytestmark = pytest.mark.integration
SENTENCES = [f"Sentence {k}: the service was {'great' if k % 2 else 'slow'} today." for k in range(20)]


def post(stack, path, body):
    return requests.post(f"{stack.nginx.url}{path}", json=body, timeout=30)


def cache_counts(stack) -> dict[str, float]:
    samples = scrape(f"{stack.nginx.admin_url}/metrics")
    return {r: total(samples, "twinserve_cache_requests_total", model="sentiment", result=r) for r in ("hit", "miss")}


def not_kept(stack) -> dict[str, float]:
    samples = scrape(f"{stack.nginx.admin_url}/metrics")
    reasons = ("evicted", "too_large", "no_memory")
    return {r: total(samples, "twinserve_cache_not_kept_total", model="sentiment", reason=r) for r in reasons}


def test_a_repeated_request_is_a_hit_with_the_same_answer(stack):
    body = {"text": f"A repeated sentence, {time.time()}."}  # not cached by any earlier test
    before = cache_counts(stack)
    first, second = post(stack, "/predict/sentiment", body), post(stack, "/predict/sentiment", body)
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")
    assert second.content == first.content
    for header in ("X-Model-Version", "X-Served-By", "Content-Type"):
        assert second.headers[header] == first.headers[header], header
    other = post(stack, "/predict/sentiment", {"text": body["text"] + " "})
    assert other.headers["X-Cache"] == "MISS", "one more byte is another request"
    after = cache_counts(stack)
    assert (after["hit"] - before["hit"], after["miss"] - before["miss"]) == (1, 2)


def test_a_hit_never_reaches_torchserve(stack):
    """TorchServe counts every request it answers (ts_inference_requests_total); a hit adds none."""
    body = {"text": f"Counted once, {time.time()}."}
    colour = read_production(stack, "sentiment")
    port = stack.colours[colour].metrics_port

    def answered() -> float:
        return total(scrape(f"http://127.0.0.1:{port}/metrics"), "ts_inference_requests_total")

    assert post(stack, "/predict/sentiment", body).headers["X-Cache"] == "MISS"
    before = answered()
    assert [post(stack, "/predict/sentiment", body).headers["X-Cache"] for _ in range(20)] == ["HIT"] * 20
    assert answered() == before


@pytest.mark.parametrize(
    ("path", "body"),
    [("/test/predict/sentiment", {"text": "Staging is never cached."}), ("/predict/regressor", ROW), ("/predict", ROW)],
)
def test_staging_and_models_that_opt_out_bypass_the_cache(stack, path, body):
    answers = [post(stack, path, body) for _ in range(3)]
    assert [a.status_code for a in answers] == [200] * 3
    assert [a.headers["X-Cache"] for a in answers] == ["BYPASS"] * 3


@pytest.mark.parametrize(
    "headers",
    [
        {"Cache-Control": "no-cache"},
        {"Cache-Control": "No-Cache"},
        {"Cache-Control": "max-age=0, NO-STORE"},
        {"Pragma": "no-cache"},
        {"Pragma": "No-Cache"},
    ],
)
def test_a_client_asking_for_a_fresh_answer_in_any_case_bypasses_and_nothing_is_stored(stack, headers):
    """RFC 9111: directives are case-insensitive; no-store is never kept; Pragma counts without Cache-Control."""
    body = {"text": f"Fresh, please: {headers}, {time.time()}."}
    asked = [requests.post(f"{stack.nginx.url}/predict/sentiment", json=body, headers=headers, timeout=30)
             for _ in range(2)]  # fmt: skip
    assert [a.status_code for a in asked] == [200, 200], [a.text for a in asked]
    assert [a.headers["X-Cache"] for a in asked] == ["BYPASS", "BYPASS"]
    # Nothing was stored by the bypassed requests: the first plain one is a MISS.
    assert [post(stack, "/predict/sentiment", body).headers["X-Cache"] for _ in range(2)] == ["MISS", "HIT"]


def test_errors_are_not_cached(stack):
    answers = [post(stack, "/predict/sentiment", {"text": "   "}) for _ in range(2)]
    assert [a.status_code for a in answers] == [400, 400]
    assert [a.headers["X-Cache"] for a in answers] == ["MISS", "MISS"]


def test_a_swap_and_a_rollback_make_the_old_answers_unreachable(stack):
    body = {"text": f"Swapped under me, {time.time()}."}
    first = post(stack, "/predict/sentiment", body)
    assert post(stack, "/predict/sentiment", body).headers["X-Cache"] == "HIT"
    promote.swap(stack, "sentiment")
    try:
        after = post(stack, "/predict/sentiment", body)
        assert after.headers["X-Cache"] == "MISS"
        assert after.headers["X-Served-By"] != first.headers["X-Served-By"]
        assert post(stack, "/predict/sentiment", body).headers["X-Cache"] == "HIT"
    finally:
        promote.rollback(stack, "sentiment")
    back = post(stack, "/predict/sentiment", body)
    assert back.headers["X-Cache"] == "MISS" and back.headers["X-Served-By"] == first.headers["X-Served-By"]


def test_under_a_repeating_workload_no_answer_of_the_old_version_follows_a_swap(stack, workdir):
    """Eight threads send sentiment requests, 95% of them one of 20 sentences, while production moves
    between two versions (1.0 and the one deployed here) four times. Each answer is checked against
    the version production had when its request was sent: a request sent after a swap returned must
    get the new version. Every answer is 2xx, and most are hits."""
    before = colours(stack)
    deploy.deploy(stack, workdir / "models" / "sentiment", model="sentiment")  # a new version on staging
    versions = {}
    for colour in stack.colours:
        probe = requests.post(f"{stack.nginx.url}/{'predict' if colour == before['sentiment'][0] else 'test/predict'}"
                              "/sentiment", json={"text": f"which version? {colour}"}, timeout=30)  # fmt: skip
        versions[colour] = probe.headers["X-Model-Version"]
    assert len(set(versions.values())) == 2, versions

    log, stop, lock = [], threading.Event(), threading.Lock()
    epoch = {"n": 0, "version": versions[read_production(stack, "sentiment")]}  # what production serves now

    def client(seed):
        rng = random.Random(seed)
        while not stop.is_set():
            text = rng.choice(SENTENCES) if rng.random() < 0.95 else f"unique {seed} {rng.random()}"
            with lock:
                sent_in, expected = epoch["n"], epoch["version"]
            answer = requests.post(f"{stack.nginx.url}/predict/sentiment", json={"text": text}, timeout=30)
            with lock:  # sent and answered with no swap under way: only `expected` is right
                settled = sent_in % 2 == 0 and epoch["n"] == sent_in
            log.append((answer.status_code, answer.headers.get("X-Cache"), answer.headers.get("X-Model-Version"),
                        expected, settled))  # fmt: skip

    with ThreadPoolExecutor(8) as pool:
        for seed in range(8):
            pool.submit(client, seed)
        try:
            for _ in range(4):
                time.sleep(2)
                with lock:
                    epoch["n"] += 1  # odd: a swap under way, either version is right
                promote.swap(stack, "sentiment")
                with lock:
                    epoch["n"] += 1
                    epoch["version"] = versions[read_production(stack, "sentiment")]
            time.sleep(2)
        finally:
            stop.set()
    assert colours(stack) == before  # four swaps: where it started
    assert len(log) > 200, len(log)
    assert [entry for entry in log if entry[0] != 200] == []
    stale = [entry for entry in log if entry[4] and entry[2] != entry[3]]
    assert stale == [], f"{len(stale)} answers of a version no longer in production, e.g. {stale[:3]}"
    hits = sum(1 for entry in log if entry[1] == "HIT")
    assert hits > len(log) / 2, (hits, len(log))
    print(json.dumps({"requests": len(log), "hits": hits, "checked": sum(1 for e in log if e[4])}))


@pytest.fixture
def small_cache(spare_nginx):
    """The spare Nginx with the smallest dictionary Nginx takes (128k: a few hundred sentiment answers)
    and entries bounded at 1k."""
    small = dataclasses.replace(spare_nginx, nginx=dataclasses.replace(spare_nginx.nginx, cache_size="128k",
                                                                      cache_max_entry="1k"))  # fmt: skip
    nginx.start(small)
    nginx.wait_ready(small)
    return small


def test_a_full_cache_evicts_the_least_recently_used_and_bounds_its_entries(small_cache):
    """1,500 distinct sentences through a cache that holds a few hundred: every answer is a 200, the
    dictionary evicts (counted) the least recently used, keeps the newest, and never stores an answer
    over the entry bound."""
    url = f"{small_cache.nginx.url}/predict/sentiment"
    first = {"text": "The first sentence of all, soon forgotten."}
    assert [requests.post(url, json=first, timeout=30).headers["X-Cache"] for _ in range(2)] == ["MISS", "HIT"]

    def send(k):
        with requests.Session() as session:
            return [session.post(url, json={"text": f"Sentence {i} of the flood."}, timeout=30)
                    for i in range(k, 1500, 4)]  # fmt: skip

    with ThreadPoolExecutor(4) as pool:
        answers = [a for part in pool.map(send, range(4)) for a in part]
    assert len(answers) == 1500 and {(a.status_code, a.headers["X-Cache"]) for a in answers} == {(200, "MISS")}
    kept = not_kept(small_cache)
    assert kept["evicted"] > 0 and kept["no_memory"] == 0, kept
    free = total(scrape(f"{small_cache.nginx.admin_url}/metrics"), "twinserve_cache_free_bytes")
    assert free < 128 * 1024, free
    assert requests.post(url, json=first, timeout=30).headers["X-Cache"] == "MISS", "the oldest was kept"
    last = [requests.post(url, json={"text": f"Sentence {i} of the flood."}, timeout=30) for i in (1496, 1497)]
    assert [a.headers["X-Cache"] for a in last] == ["HIT", "HIT"], "the newest were evicted"

    long = {"text": "A long sentence that fills the entry. " * 30}  # ~1,100 bytes: over the 1k bound
    answers = [requests.post(url, json=long, timeout=30) for _ in range(2)]
    assert [(a.status_code, a.headers["X-Cache"]) for a in answers] == [(200, "MISS")] * 2
    assert not_kept(small_cache)["too_large"] - kept["too_large"] == 2
