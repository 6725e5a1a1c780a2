"""The baseline for ``bench.ingest``: a Django view that answers 202 and does nothing."""

from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def bare(request, provider_id: int):
    return HttpResponse(status=202)
