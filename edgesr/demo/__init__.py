"""The upscaling demo: a web page over :mod:`edgesr.runtime`, standard library only (no torch).

``catalog``: the models served and what the page may show about them; ``work``: one upload
through a model; ``protocol``: bounded HTTP on asyncio streams; ``server``: routes, admission
and worker threads; ``limits``: every bound in one place; ``static/``: the page itself.
Nothing is imported here, so the CLI can read the limits' defaults without loading a runtime.
"""
