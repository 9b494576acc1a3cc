"""One blocking HTTP request, shared by the Python interop clients (standard library only)."""

import urllib.error
import urllib.request


def http(method, url, body=None, content_type=None, headers=None):
    """One HTTP request with a 10 s timeout; `body` is text or bytes. Returns (status, headers,
    body text), also for error statuses."""
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, res.headers, res.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()
