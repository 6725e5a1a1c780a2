from sync.models import CloudProvider


def test_provider_gets_a_secret(provider):
    assert len(provider.endpoint_secret) > 30
    again = CloudProvider.objects.get(pk=provider.pk)
    assert again.endpoint_secret == provider.endpoint_secret
