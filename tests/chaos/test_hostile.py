"""Hostile input through the real broker into `driftmon run`: nothing crashes, every
message is accounted for by reason (metric and dead-letter header), valid oddities are
counted exactly, and Redis keys and Prometheus series stay bounded.

The `ci` scale sends 100 000 distinct category values, `make chaos` 1 000 000.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path

import pytest
import redis
from confluent_kafka import Consumer, Producer

from monitor.decode import Reason
from tests.chaos.hostile import MAX_BYTES, SPECIAL_NAMES, hostile_messages
from tests.chaos.report import Row, record
from tests.chaos.rig import Scale, _wait
from tests.services import RedisServer, create_topic
from tests.stream.harness import (
    Daemon,
    expected_counts,
    make_events,
    redis_counts,
    write_baselines,
    write_config,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

MODELS = {"fraud", "churn"}
BASELINE_FEATURES = {"amount", "age", "country", "__prediction__", "tenure", "plan"}
# Every key driftmon may write, for the configured models only (README "Redis keys").
KEY = re.compile(
    r"(?P<prefix>[^:]+):(models|offsets|alerts:log|\{alerts\}:outbox:[^{}]+"
    r"|\{(?P<model>[a-z]+)\}:(state|baseline|alertstate|progress|lease|wm|bv|b:\d+))"
)
FIELD = re.compile(
    r"n|ign|f:(amount|age|country|__prediction__|tenure|plan):(\d+|m|o|u)|l:\d+|x:[a-z_]+"
)


def _produce(bootstrap: str, topic: str, values: list[bytes | None]) -> None:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 20, "message.max.bytes": 4 * MAX_BYTES}
    )
    errors: list[str] = []
    for value in values:
        while True:
            try:
                producer.produce(
                    topic, value, on_delivery=lambda e, _m: errors.append(str(e)) if e else None
                )
            except BufferError:
                producer.poll(0.1)
            else:
                break
    assert producer.flush(120) == 0
    assert not errors, errors[:3]


def _series(daemon: Daemon) -> list[tuple[str, dict[str, str]]]:
    """(metric, labels) of every sample on /metrics."""
    out = []
    for line in daemon.get("/metrics").text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition("{")
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', rest.rpartition("}")[0]))
        out.append((name.split(" ")[0], labels))
    return out


def _dead_letter_reasons(bootstrap: str, topic: str, expected: int) -> Counter[str]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"{topic}-r", "auto.offset.reset": "earliest"}
    )
    reasons: Counter[str] = Counter()
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 60
        while sum(reasons.values()) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.5):
                if msg.error() is None:
                    for key, value in msg.headers() or []:
                        if key == "driftmon-reason":
                            reasons[value.decode()] += 1
        time.sleep(0.5)
        for msg in consumer.consume(500, 1.0):  # nothing beyond what was expected
            if msg.error() is None:
                reasons["<extra>"] += 1
    finally:
        consumer.close()
    return reasons


def _check_bounded(
    client: redis.Redis, daemon: Daemon, prefix: str
) -> tuple[int, set[tuple[str, frozenset[tuple[str, str]]]]]:
    keys = [k.decode() for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
    for key in keys:
        match = KEY.fullmatch(key)
        assert match is not None, f"unexpected Redis key {key!r}"
        assert match["model"] in (None, *MODELS), key
        if ":b:" in key:
            fields = [f.decode() for f in client.hkeys(key)]
            assert len(fields) <= 300, (key, len(fields))
            odd = [f for f in fields if not FIELD.fullmatch(f)]
            assert not odd, f"unexpected fields in {key}: {odd[:5]}"
    series = _series(daemon)
    for name, labels in series:
        assert labels.get("model", "fraud") in MODELS, (name, labels)
        assert labels.get("reason", "oversize") in {r.value for r in Reason}, (name, labels)
        assert labels.get("feature", "") in BASELINE_FEATURES | {""}, (name, labels)
    text = daemon.get("/metrics").text
    leaked = [n for n in SPECIAL_NAMES if len(n) > 3 and "le=" not in n and n in text]
    assert not leaked, f"feature names in /metrics: {leaked}"
    return len(keys), {(name, frozenset(labels.items())) for name, labels in series}


def test_hostile_input_is_accounted_for_and_bounded(
    tmp_path: Path, kafka_bootstrap: str, prefix: str, scale: Scale
) -> None:
    distinct = 1_000_000 if scale.name == "full" else 100_000
    topic = create_topic(kafka_bootstrap, f"{prefix}-events", partitions=2)
    dlq = create_topic(kafka_bootstrap, f"{prefix}-dlq", partitions=1)
    baselines = write_baselines(tmp_path)
    with RedisServer() as server:
        client = server.client()
        config = write_config(
            tmp_path,
            bootstrap=kafka_bootstrap,
            topic=topic,
            redis_url=server.url,
            prefix=prefix,
            baselines=baselines,
            kafka={"dead_letter_topic": dlq, "max_message_bytes": MAX_BYTES},
            evaluation={"interval_seconds": 1},
        )
        daemon = Daemon(config, tmp_path).start()
        try:
            now = time.time()
            warmup = make_events(2000, seed=3, now=now)
            _produce(kafka_bootstrap, topic, [_json(e) for e in warmup])
            _wait(lambda: redis_counts(client, prefix, "fraud")["n"] > 0, 90, "warm-up counted")
            time.sleep(2.5)  # an evaluation round: the state documents and their series exist
            keys_before, series_before = _check_bounded(client, daemon, prefix)

            hostile = hostile_messages(now, distinct)
            started = time.monotonic()
            _produce(kafka_bootstrap, topic, hostile.messages)
            expected = expected_counts(warmup + hostile.valid, baselines)
            for template, times in hostile.bulk:
                one = expected_counts([template], baselines)["fraud"]
                for name, count in one.items():
                    expected["fraud"][name] += count * times
            want = {m: expected[m]["n"] for m in MODELS}
            _wait(
                lambda: {m: redis_counts(client, prefix, m)["n"] for m in MODELS} == want,
                180,
                f"counts {want}",
            )
            elapsed = time.monotonic() - started
            time.sleep(2.5)
            assert daemon.alive(), daemon.log_text()[-3000:]
            assert daemon.get("/readyz").status_code == 200

            # every invalid message or element, by reason: metric and dead-letter header
            got = {
                r.value: int(daemon.metric("driftmon_events_invalid_total", reason=r.value))
                for r in Reason
            }
            assert {k: v for k, v in got.items() if v} == dict(hostile.reasons)
            assert sum(got.values()) == sum(hostile.reasons.values())
            assert daemon.metric("driftmon_events_late_total", model="fraud") == hostile.late
            for model in MODELS:
                actual = redis_counts(client, prefix, model)
                diff = {
                    k: (actual.get(k, 0), v)
                    for k, v in (expected[model] | actual).items()
                    if actual.get(k, 0) != expected[model].get(k, 0)
                }
                assert not diff, f"{model}: (actual, expected) {dict(list(diff.items())[:10])}"
            ignored = sum(
                int(client.hget(key, "ign") or 0)
                for key in client.scan_iter(match=f"{prefix}:{{fraud}}:b:*")
            )
            assert ignored == hostile.ignored + sum(
                len(e["features"]) - sum(f in BASELINE_FEATURES for f in e["features"])
                for e in warmup
                if e["model"] == "fraud"
            )
            keys_after, series_after = _check_bounded(client, daemon, prefix)
            assert keys_after <= keys_before + 10  # a few new minute buckets at most
            new = series_after - series_before
            # only the invalid-reason counters (and their dead-letter twins) and `late` are new
            assert all(
                dict(labels).keys() == {"reason"} or name.startswith("driftmon_events_late")
                for name, labels in new
            ), sorted(new)[:10]
        finally:
            daemon.stop()
            client.close()
    assert daemon.proc is not None and daemon.proc.returncode == 0, daemon.log_text()[-3000:]
    dead = _dead_letter_reasons(kafka_bootstrap, dlq, sum(hostile.reasons.values()))
    assert dead == hostile.reasons
    record(
        Row(
            f"hostile input ({len(hostile.messages)} msgs, {distinct} categories)",
            sum(want.values()) + sum(hostile.reasons.values()) + hostile.late,
            sum(want.values()),
            0,
            0,
            None,
            f"{sum(hostile.reasons.values())} invalid in {len(hostile.reasons)} reasons, "
            f"{hostile.late} late, all accounted; keys {keys_before}->{keys_after}, "
            f"series {len(series_before)}->{len(series_after)}; {elapsed:.1f} s",
        )
    )


def _json(value: object) -> bytes:
    return json.dumps(value).encode()
