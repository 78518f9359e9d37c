"""Pull and push over Ollama's registry protocol (OCI Distribution / Docker registry v2).

    remote.py    name → URL resolution, the knobs (``TransferOptions``)
    auth.py      credentials file, ``WWW-Authenticate`` challenges, Ollama's ed25519 signatures
    http.py      one authenticated registry conversation (redirects, 401 → token → retry)
    download.py  shared, resumable, parallel ranged blob downloads into the blob store
    pull.py      the pull sequence and its progress lines
    upload.py    one blob upload (HEAD, POST, PATCH parts, PUT ?digest=)
    push.py      the push sequence and its progress lines
    manifest_serving.py  the registry side of Corral's own ``/v2/`` (manifests by
                 repository/reference)
    service.py   ``TransferService``: what the gRPC servicer (``registry/servicer_transfer.py``)
                 holds and calls
"""
