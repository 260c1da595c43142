"""The compression service: one FastAPI app (``ragpress.serve.app``) that batches concurrent
requests (``ragpress.serve.batching``), runs alone under uvicorn or as a Ray Serve deployment
(``ragpress.serve.ray``), and its client, :class:`ragpress.remote.RemoteCompressor`.

Importing this package imports no web framework: ``ragpress.serve.wire`` (the JSON form of
requests and results) is all the client needs.
"""
