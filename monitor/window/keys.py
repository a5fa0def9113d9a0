"""Redis key layout. All keys of one model share the hash tag `{model}` (Redis Cluster).

User-facing (SPEC §4, README "Redis keys"):
    <prefix>:models                     set of tracked model names
    <prefix>:{<model>}:state            JSON state document, replaced after each evaluation
    <prefix>:{<model>}:baseline         baseline document in force
    <prefix>:alerts:log                 stream of alert transitions
Internal:
    <prefix>:{<model>}:b:<start>        hash: counts of the bucket starting at <start> (epoch s)
    <prefix>:{<model>}:bv               hash: <start> -> id of the last flush that changed that
                                        bucket (the evaluator re-reads only changed buckets)
    <prefix>:{<model>}:wm               hash: "<topic>:<partition>" -> last offset applied
    <prefix>:offsets                    hash: "<topic>:<partition>" -> offset every model applied
                                        (a start without reads: the start offset - 1)
    <prefix>:{<model>}:alertstate       JSON: the alert state machine of the model
    <prefix>:{<model>}:lease            string: the replica evaluating the model (PX TTL)
    <prefix>:{<model>}:progress         hash: flushed_at, newest (message time) of the last flush
    <prefix>:{alerts}:outbox:<sink>:q      list: notification ids queued for one sink (FIFO)
    <prefix>:{alerts}:outbox:<sink>:items  hash: id -> notification JSON
    <prefix>:{alerts}:outbox:<sink>:meta   hash: id -> "<attempts> <next attempt epoch s>"
    <prefix>:{alerts}:outbox:<sink>:seen   zset: ids already delivered/rejected -> when
    <prefix>:{alerts}:outbox:<sink>:open   set: alert identities this sink was sent as firing
    <prefix>:{alerts}:outbox:<sink>:lease  string: id of the worker draining this sink (PX TTL)
(the `{alerts}` hash tag keeps every outbox key in one Redis Cluster slot, for the Lua scripts)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "driftmon"

    @property
    def models(self) -> str:
        return f"{self.prefix}:models"

    @property
    def offsets(self) -> str:
        return f"{self.prefix}:offsets"

    @property
    def alerts_log(self) -> str:
        return f"{self.prefix}:alerts:log"

    def state(self, model: str) -> str:
        return f"{self.prefix}:{{{model}}}:state"

    def baseline(self, model: str) -> str:
        return f"{self.prefix}:{{{model}}}:baseline"

    def bucket(self, model: str, start: int) -> str:
        return f"{self.prefix}:{{{model}}}:b:{start}"

    def bucket_versions(self, model: str) -> str:
        return f"{self.prefix}:{{{model}}}:bv"

    def alert_states(self, model: str) -> str:
        return f"{self.prefix}:{{{model}}}:alertstate"

    def progress(self, model: str) -> str:
        return f"{self.prefix}:{{{model}}}:progress"

    def lease(self, model: str) -> str:
        return f"{self.prefix}:{{{model}}}:lease"

    def watermarks(self, model: str) -> str:
        return f"{self.prefix}:{{{model}}}:wm"

    def outbox(self, sink: str, part: str) -> str:
        """One outbox key of `sink`; `part` is q, items, meta, seen, open or lease."""
        return f"{self.prefix}:{{alerts}}:outbox:{sink}:{part}"


def partition_field(topic: str, partition: int) -> str:
    """Field name of a (topic, partition) in the watermark hashes."""
    return f"{topic}:{partition}"
