"""PLACEHOLDER — being implemented (idle/absolute limits, UserSession tracking)."""


def enforce(request):
    return None


def touch(request, response):
    return None
