"""The API's documentation: ``/openapi.json`` as people read it, and a
Swagger UI page that works on every node.

- Each operation's summary is the first whole sentence of its handler's
  docstring, its description the whole docstring, both without reST
  markup (``key`` becomes `key`, which Swagger UI shows as code).
- ``/docs`` on a follower sends the requests a follower would redirect
  (writes, linearizable reads, leases, backups) to the leader, found on
  the node's own ``/api/status`` just before each request: a redirect to
  another origin would make the browser send ``Origin: null``, which no
  node allows. The leader answers the follower's origin with CORS
  headers (raft_trio.http.cors). Requests about the node itself (status,
  members, events, a stale read) stay on it.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
from typing import Any

#: The end of a sentence: a stop, then a space and a capital, a digit, an
#: opening bracket or a literal (so "e.g. a key" does not end one).
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[`])")
#: reST inline literals.
LITERAL = re.compile(r"``(.+?)``")


def package_version() -> str:
    """The installed raft-trio's version: the API's version in /docs."""
    try:
        return importlib.metadata.version("raft-trio")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"  # run from a source tree that was never installed


def paragraphs(docstring: str) -> list[str]:
    """The docstring's paragraphs, each on one line."""
    return [" ".join(part.split()) for part in re.split(r"\n\s*\n", docstring) if part.strip()]


def describe_operation(operation: dict[str, Any]) -> None:
    """Summary and description from the docstring quart-schema split at
    its first line (which cut sentences in half)."""
    docstring = "\n".join(filter(None, [operation.get("summary"), operation.get("description")]))
    parts = paragraphs(docstring)
    if not parts:
        return
    markdown = [LITERAL.sub(r"`\1`", part) for part in parts]
    first_sentence = SENTENCE_END.split(markdown[0], maxsplit=1)[0]
    operation["summary"] = first_sentence.replace("`", "")
    operation["description"] = "\n\n".join(markdown)


def describe_operations(document: dict[str, Any], bad_request: dict[str, Any] | None = None) -> None:
    """Every operation described from its docstring; with ``bad_request``
    (an answer's OpenAPI object), also listed as the ``400`` of each
    operation that takes a body or parameters and lists none."""
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            if isinstance(operation, dict):
                describe_operation(operation)
                takes_input = "requestBody" in operation or operation.get("parameters")
                if bad_request is not None and takes_input:
                    responses = operation.setdefault("responses", {})
                    if 400 not in responses and "400" not in responses:
                        responses[400] = bad_request


PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <link rel="icon" href="data:,">
  <link type="text/css" rel="stylesheet" href="{css_url}">
  <title>{title}</title>
  <style>
    #raft-leader {{ font-family: sans-serif; margin: 10px 20px; color: #3b4151; }}
  </style>
</head>
<body>
  <div id="raft-leader">&nbsp;</div>
  <div id="swagger-ui"></div>
  <script src="{js_url}"></script>
  <script>
    const settings = {settings};
    const leaderNote = document.getElementById("raft-leader");

    // What a follower would redirect to the leader: every request that is
    // not a GET, and reads of keys, leases and backups unless stale.
    function needsLeader(method, url) {{
      if (url.origin !== location.origin) return false;
      const path = url.pathname.slice(settings.root.length);
      if (!path.startsWith(settings.api + "/")) return false;
      if (url.searchParams.get("consistency") === "stale") return false;
      if (method.toUpperCase() !== "GET") return true;
      return ["/kv", "/leases", "/snapshot"].some((p) => {{
        const base = settings.api + p;
        return path === base || path.startsWith(base + "/");
      }});
    }}

    async function status() {{
      try {{
        const answer = await fetch(settings.status, {{cache: "no-store"}});
        if (answer.ok) return await answer.json();
      }} catch (error) {{}}
      return null;
    }}

    async function showLeader() {{
      const s = await status();
      if (s === null) {{
        leaderNote.textContent = "This node does not answer /api/status.";
      }} else if (s.role === "leader") {{
        leaderNote.textContent = `Node ${{s.id}} leads (term ${{s.term}}): requests go to it.`;
      }} else if (s.leader_url) {{
        leaderNote.textContent = `Node ${{s.id}} is a ${{s.role}}: writes and linearizable reads go to ` +
          `the leader ${{s.leader_id}} at ${{s.leader_url}}.`;
      }} else {{
        leaderNote.textContent = `Node ${{s.id}} is a ${{s.role}} and knows no leader right now.`;
      }}
    }}

    window.ui = SwaggerUIBundle({{
      url: settings.openapi,
      dom_id: "#swagger-ui",
      deepLinking: true,
      layout: "BaseLayout",
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
      requestInterceptor: async (request) => {{
        const url = new URL(request.url, location.href);
        if (needsLeader(request.method || "GET", url)) {{
          const s = await status();
          if (s && s.leader_url) {{
            const leader = new URL(s.leader_url);
            if (leader.origin !== location.origin) {{
              request.url = leader.origin + url.pathname + url.search;
            }}
          }}
        }}
        return request;
      }},
    }});
    showLeader();
  </script>
</body>
</html>
"""


def docs_page(
    *, title: str, js_url: str, css_url: str, openapi_url: str, status_url: str, api_prefix: str, root: str
) -> str:
    """The Swagger UI page of a node."""
    settings = {"openapi": openapi_url, "status": status_url, "api": api_prefix, "root": root}
    # JSON inside <script>: no "</" may close it early.
    settings_js = json.dumps(settings).replace("</", "<\\/")
    escaped_title = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return PAGE.format(css_url=css_url, js_url=js_url, title=escaped_title, settings=settings_js)
