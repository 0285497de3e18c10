"""facesketch: face photo <-> sketch translation with an attention-guided CycleGAN and geometric prior losses.

    import facesketch
    sketcher = facesketch.load()          # the shipped model ('default'), an export file or a run directory
    sketch = sketcher("photo.jpg")        # PIL in (or a path) -> PIL out; numpy in -> numpy out; lists -> lists

``load`` and ``Sketcher`` live in ``facesketch.api``; they are imported on first use so that ``import facesketch``
stays light. Errors a user can fix are ``facesketch.UserError``; progress and notes go to the ``facesketch`` logger.
"""

__version__ = "0.1.0"
__all__ = ["Sketcher", "UserError", "__version__", "load"]


def __getattr__(name: str):
    if name in ("load", "Sketcher"):
        from facesketch import api

        return getattr(api, name)
    if name == "UserError":
        from facesketch.errors import UserError

        return UserError
    raise AttributeError(f"module 'facesketch' has no attribute {name!r}")
