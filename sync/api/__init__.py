"""The REST API (DRF): serializers, viewsets, filtersets, permissions, urls."""
