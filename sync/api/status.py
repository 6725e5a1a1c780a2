"""Serializers of the status API (``/api/cloud-providers/<id>/status/`` and
``/api/cloud-providers/status/``): they describe, for the OpenAPI schema,
the dictionaries ``sync.status`` builds; nothing here computes."""

from __future__ import annotations

from rest_framework import serializers

__all__ = ["OverviewSerializer", "ProviderStatusSerializer"]

LAG_HELP = ("Upper bound of the lag bucket holding that rank (buckets 1-1.5-2-3-5-7 per decade "
            "from 0.01 s): at least that share of the events processed or ignored in the window "
            "were final within this many seconds after they were received. Null: none.")


def _lag(q: str) -> serializers.FloatField:
    return serializers.FloatField(allow_null=True, help_text=f"{q}. {LAG_HELP}")


class OutcomeCountsSerializer(serializers.Serializer):
    received = serializers.IntegerField(help_text="Events recorded in the inbox (new, not duplicates).")
    processed = serializers.IntegerField()
    ignored = serializers.IntegerField()
    failed = serializers.IntegerField()
    dead = serializers.IntegerField(help_text="Events that exhausted their retries.")


class SeriesPointSerializer(OutcomeCountsSerializer):
    start = serializers.DateTimeField(help_text="Start of the step (UTC).")
    lag_p50_seconds = _lag("Median lag in this step")
    lag_p99_seconds = _lag("99th percentile lag in this step")


class EventFiguresSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    step_seconds = serializers.IntegerField()
    totals = OutcomeCountsSerializer(help_text="Counts over the whole window (24 h).")
    lag_p50_seconds = _lag("Median lag over the window")
    lag_p99_seconds = _lag("99th percentile lag over the window")
    series = SeriesPointSerializer(many=True)


class QueueSerializer(serializers.Serializer):
    name = serializers.CharField()
    depth = serializers.IntegerField(allow_null=True, help_text="Messages waiting (Redis list "
                                     "lengths, priority lists included); null if Redis did not answer.")


class QueuesSerializer(serializers.Serializer):
    queues = QueueSerializer(many=True)
    reserved = serializers.IntegerField(allow_null=True, help_text="Messages reserved by workers "
                                        "(all queues).")
    error = serializers.CharField(help_text="Why Redis could not be read, else empty.")


class InboxSerializer(serializers.Serializer):
    queued = serializers.IntegerField()
    failed = serializers.IntegerField()
    dead = serializers.IntegerField(help_text="The dead letters: replay with POST "
                                    "/api/events/replay/?provider=<id>&status=dead.")


class RunFiguresSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    status = serializers.CharField()
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    duration_seconds = serializers.FloatField(allow_null=True)
    objects_listed = serializers.IntegerField(help_text="Objects the listing returned (counts "
                                              "summed, deletions left out).")
    drift_healed = serializers.IntegerField()
    events_applied = serializers.IntegerField(
        allow_null=True, help_text="Objects changed since the previous full sync began that "
        "events had applied (null: first full sync, not measured).")
    event_coverage = serializers.FloatField(
        allow_null=True, help_text="events_applied / (events_applied + drift_healed), 0-1.")
    error = serializers.CharField()


class RunningSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    started_at = serializers.DateTimeField()
    progress = serializers.JSONField(allow_null=True, help_text="The run's progress, when it "
                                     "records one.")


class CoverageSerializer(serializers.Serializer):
    run = serializers.IntegerField()
    started_at = serializers.DateTimeField()
    since = serializers.DateTimeField(help_text="When the previous full sync began.")
    events_applied = serializers.IntegerField()
    drift_healed = serializers.IntegerField()
    event_coverage = serializers.FloatField(allow_null=True)


class ProviderBriefStatusSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    driver = serializers.CharField()
    enabled = serializers.BooleanField()
    last_event_received_at = serializers.DateTimeField(allow_null=True)


class ProviderStatusSerializer(serializers.Serializer):
    provider = ProviderBriefStatusSerializer()
    generated_at = serializers.DateTimeField()
    events = EventFiguresSerializer()
    queues = QueuesSerializer()
    inbox = InboxSerializer()
    last_full_sync = RunFiguresSerializer(allow_null=True)
    running = RunningSerializer(allow_null=True)
    coverage = CoverageSerializer(many=True, help_text="The last 30 measured full syncs, oldest first.")


class OverviewProviderSerializer(ProviderBriefStatusSerializer):
    events = OutcomeCountsSerializer(help_text="Counts over the last 24 h.")
    lag_p50_seconds = _lag("Median lag over 24 h")
    lag_p99_seconds = _lag("99th percentile lag over 24 h")
    inbox = InboxSerializer()
    last_full_sync = RunFiguresSerializer(allow_null=True)


class OverviewSerializer(serializers.Serializer):
    generated_at = serializers.DateTimeField()
    events = EventFiguresSerializer(help_text="All providers together.")
    queues = QueuesSerializer()
    providers = OverviewProviderSerializer(many=True)
