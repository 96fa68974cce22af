"""The front door of Kiln's JSON API, for any app: session auth for the browser (with CSRF), Bearer tokens
for scripts, JSON errors instead of HTML pages."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import wraps

from django.http import HttpRequest, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from accounts.models import ApiToken

LAST_USED_PRECISION = timedelta(minutes=1)


def _token_user(request: HttpRequest):
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    token = ApiToken.objects.select_related("user").filter(key_hash=ApiToken.hash(header[7:].strip())).first()
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    # To the minute: a script calling every second would otherwise write a row per call, and on SQLite each
    # write waits for the lock a busy worker may hold, which is what a page under load waits on most.
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_PRECISION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user


def api_view(*methods: str) -> Callable:
    """JSON errors instead of HTML; 401 for anonymous callers; CSRF enforced for browser sessions only
    (a Bearer token is not sent automatically by a browser, so it cannot be forged cross-site)."""

    def decorator(view: Callable) -> Callable:
        @csrf_exempt
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs):
            if request.method not in methods:
                return JsonResponse({"error": f"method {request.method} not allowed"}, status=405)
            if request.headers.get("Authorization", "").startswith("Bearer "):
                user = _token_user(request)
                if user is None:
                    return _unauthorized("invalid API token")
                request.user = user
            elif not request.user.is_authenticated:
                return _unauthorized("authentication required: log in, or send Authorization: Bearer <token>")
            elif request.method not in ("GET", "HEAD"):
                rejected = CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {})
                if rejected is not None:
                    return JsonResponse({"error": "CSRF check failed"}, status=403)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def _unauthorized(message: str) -> JsonResponse:
    response = JsonResponse({"error": message}, status=401)
    response["WWW-Authenticate"] = 'Bearer realm="kiln"'
    return response


MAX_IDS = 200
# The largest id a database column holds (a signed 64-bit integer): SQLite refuses a larger one outright.
MAX_ID = 2**63 - 1


def integer_parse(text: str, *, lowest: int = 1, highest: int = MAX_ID) -> int | None:
    """A decimal integer a caller sent (an id by default: 1 to the largest a column holds), or None for
    anything else: signs, other scripts' digits, more digits than any id has."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    value = int(text)
    return value if lowest <= value <= highest else None


def ids_parse(text: str) -> list[int]:
    """`1,2,3` into ids; ValueError with a message for the caller on anything else."""
    parts = [part for part in text.split(",") if part.strip()]
    if len(parts) > MAX_IDS:
        raise ValueError(f"ids takes at most {MAX_IDS} ids at once")
    ids = [integer_parse(part) for part in parts]
    if None in ids:
        raise ValueError("ids must be a comma-separated list of positive integers")
    return ids
