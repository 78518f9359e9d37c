"""Names for parsed JSON (request bodies, ``json.loads`` results, wire objects), shared by every
package so a JSON object is spelled one way."""

from __future__ import annotations

from typing import Any

JSONObject = dict[str, Any]
JSONValue = Any
