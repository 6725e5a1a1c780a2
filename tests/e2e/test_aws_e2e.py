"""AWS through the real endpoint, Redis and a Celery worker, boto3 against moto:
EventBridge events (direct and inside SNS, text/plain + Basic auth) and an SNS
SubscriptionConfirmation that the worker confirms by visiting SubscribeURL."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from sync.choices import EventStatusChoices as Status
from sync.models import CloudHost, Event
from tests.drivers.test_aws_events import state_event
from tests.e2e.conftest import post, wait_for
from tests.local_http import LocalHttpServer, QuietHandler
from tests.moto_server import MotoServer, fresh_region, moto_server_fixture  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)



def test_eventbridge_and_sns_deliveries_keep_hosts_current(client, moto_server: MotoServer,
                                                          provider_factory, celery_worker):
    region = fresh_region()
    provider = provider_factory(cloud_sync_driver="aws.ec2", client_config=moto_server.config(region))
    a, b = moto_server.launch(region, count=2, name="app")
    post(client, provider, [state_event(i["InstanceId"], "running", region, T0, n)
                            for n, i in enumerate((a, b))])
    wait_for(lambda: CloudHost.objects.filter(cloudprovider=provider, status="active").count() == 2)
    # b is stopped; the event arrives through an SNS HTTP subscription
    moto_server.client("ec2", region).stop_instances(InstanceIds=[b["InstanceId"]])
    inner = state_event(b["InstanceId"], "stopped", region, T0.replace(minute=5), 7)
    envelope = {"Type": "Notification", "MessageId": "sns-1", "TopicArn": "arn:aws:sns:x:1:t",
                "Message": json.dumps(inner)}
    secret = base64.b64encode(f"sns:{provider.endpoint_secret}".encode()).decode()
    post(client, provider, envelope, content_type="text/plain; charset=UTF-8",
         HTTP_AUTHORIZATION=f"Basic {secret}", HTTP_X_AMZ_SNS_MESSAGE_TYPE="Notification")
    wait_for(lambda: CloudHost.objects.filter(host_id=b["InstanceId"], status="stopped").exists())
    host = CloudHost.objects.select_related("cloudflavor", "image").get(host_id=a["InstanceId"])
    assert host.hostname == "app" and host.cloudflavor.memory and host.image.image_id == a["ImageId"]
    assert host.ips.exists()


def test_sns_subscription_confirmation_is_visited_by_the_worker(client, moto_server: MotoServer,
                                                               provider_factory, celery_worker):
    visits: list[str] = []

    class Handler(QuietHandler):
        def do_GET(self) -> None:  # noqa: N802
            visits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = LocalHttpServer(Handler)
    try:
        provider = provider_factory(cloud_sync_driver="aws.ec2",
                                    client_config=moto_server.config(fresh_region()))
        url = f"{server.url}/?Action=ConfirmSubscription&Token=t1"
        post(client, provider, {"Type": "SubscriptionConfirmation", "MessageId": "sub-1",
                                "Token": "t1", "TopicArn": "arn:aws:sns:x:1:t", "SubscribeURL": url},
             content_type="text/plain; charset=UTF-8")
        event = wait_for(lambda: Event.objects.filter(cloudprovider=provider, status=Status.IGNORED).first())
        assert event.result == {"ignored": "SNS subscription confirmed"}
        assert visits == ["/?Action=ConfirmSubscription&Token=t1"]
    finally:
        server.close()
